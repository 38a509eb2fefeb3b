"""The backend protocol: what a backend gives the language and the strategies.

Torch (Pyro) and JAX (NumPyro) implement it in ``ppl/backends/torch/`` (``backend.py``)
and ``ppl/backends/jax.py``; everything else (handlers' semantics, objectives, weights,
strategies) is written against these members. ``tests/ppl/test_backend_protocol.py`` checks
that both backends provide every one; a feature a backend lacks raises
:class:`ppl.errors.UnsupportedError` from the member, never a foreign library's error.

    >>> import ppl
    >>> isinstance(ppl.get_backend("torch"), Backend)
    True
    >>> missing_members(ppl.get_backend("torch"))
    []
"""

from typing import Any, ContextManager, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    # ---------------------------------------------------------------- the language
    name: str
    primitives: Any  # sample, param, plate, deterministic, factor, module
    distributions: Any  # the distributions module (pyro.distributions, numpyro.distributions)
    handlers: Any  # replay, condition, block, scale, mask, seed, do, uncondition
    ops: Any  # the array-ops table the objectives, weights and handlers use (logsumexp, stack,
    # is_distribution, site_value, ...). Counterfactual worlds (ppl/causal) add, written once
    # over both backends: is_array(x); zeros(shape, like) / ones(shape, like) (like's dtype
    # and device); arange(n); astype(x, like); to_index(x) (integer indices); narrow(x, axis,
    # start, length) / select(x, axis, i) (slices, functional on JAX); expand_dims, squeeze
    # (a size-1 axis only, as torch's), moveaxis; take_last(x, index) (take along the last
    # axis, leading axes broadcast); one_hot(index, size) (a boolean mask); argmax, sort (the
    # sorted values), maximum, logaddexp, log_softmax, all; tiny(x) (the dtype's smallest
    # normal); uniform(shape, like, key=None) (U(0, 1) draws: JAX needs a sample site's key,
    # torch draws from its generator); is_broadcast_along(x, axis) (one slice repeated: torch
    # reads the stride, JAX compares the slices); factor_distribution(log_factor) and
    # gumbel_given_argmax(logits, k) (the worlds' two distributions, thin classes per backend).
    # GFlowNet-EM's samplers add: to_float(x) (the default float dtype); cumsum(x, axis);
    # take_along(x, index, axis); top_k_indices(x, k) (along axis 0, largest first);
    # marked(state, columns) (a 1 written at one column per row, functionally); to_numpy(x)
    # (a host numpy array: MCMC's ArviZ export);
    # draw_index(probs, key=None) (one categorical draw per row). Exact elimination adds:
    # support_probs(fn) (the probabilities of a plain Categorical's support, or a
    # Bernoulli's on JAX, else None); unchecked_categoricals() (a context in which those
    # distributions skip their argument check: the elimination checks their tables);
    # normalises_probs (whether a Categorical divides its probabilities by their sum:
    # torch's does, NumPyro's does not); gather(table, indices) (``table[indices]`` for a tuple
    # of index arrays: compiled on JAX); tables (the ops table the elimination's tables use,
    # with amax(x) and to_wide_float(x) (float64) beside exp, log, where, reshape, moveaxis,
    # broadcast_to, numel, asarray, astype, zeros: torch's own table; numpy on the host for
    # JAX, whose eager operations compile once per new shape: host_tables.py)
    particle_plate: str  # the name of the plate that vectorises particles

    # ------------------------------------------------------- running and recording
    Recorder: type

    def handler(self, rule, fn=None):
        """A backend-neutral :class:`ppl.site_handler.SiteHandler` run as this backend's
        Messenger (wrapping ``fn`` when given), so that it stacks with the library's own."""

    def to_trace(self, recorder, return_value=None):
        """The common :class:`ppl.Trace` view of what a ``Recorder`` saw."""

    def run(self, fn, args=(), kwargs=None, replay=None, draw=None, adjust=None, particles=None,
            params=None, rng=None, enumerate_from=None):
        """Run ``fn`` under a ``Recorder`` (values replayed, latent draws chosen by ``draw``,
        vectorised over ``particles=(num, dim)`` (a plate) or ``(num, dim, "vmap")`` (the
        one-particle program mapped, where the backend can), ``param`` sites fixed to ``params``,
        seeded by ``rng`` where keys are explicit (``rng=False``: ``draw`` or ``replay`` sets
        every latent value, so no site needs a key), sites marked for parallel enumeration
        enumerated on dims from ``enumerate_from`` leftwards) and return its Trace."""

    def draw_reparam(self, msg):
        """Draw a latent site, reparameterised where the distribution allows it."""

    def draw_detached(self, msg):
        """Draw a latent site without a gradient path."""

    def rsample(self, fn, msg):
        """A reparameterised draw from ``fn`` for the site of ``msg`` (its key on JAX)."""

    def relaxed(self, name, fn, temperature):
        """The Concrete relaxation of a discrete site's distribution."""

    def straight_through(self, fn, soft):
        """The hard value of a relaxed draw with the soft draw's gradient."""

    def module_params(self, module):
        """(name -> trainable array of ``module``, ``rebuild``): ``rebuild(values)`` is the
        module holding ``values`` (torch: the module itself, whose parameters are the
        arrays; JAX: an Equinox module rebuilt from the values, so that a loss stays pure)."""

    def compile(self, fn):
        """``fn(key, args, kwargs)`` compiled once per static part of the call's arguments
        (JAX: ``jax.jit``, arrays traced, hashable Python values static), called as
        ``compiled(state, args, kwargs)`` with the key split off the strategy's stream inside
        the compiled call; or None where the backend runs eagerly and compiling gains
        nothing (torch)."""

    def mcmc_chains(self, model, args, kwargs, kernel, num_warmup, num_samples, num_chains,
                    options, progress, deterministic, key=None):
        """Markov chains on the backend's own ``"nuts"`` or ``"hmc"`` kernel (Pyro's; NumPyro's):
        (site name -> numpy draws ``[chains, draws, ...]``, deterministic sites included;
        extra fields: ``diverging`` ``[chains, draws]``, ``step_size`` ``[chains]``, and
        what else the kernel reports); ``deterministic``: the deterministic sites' names and
        shapes in one run (torch recomputes them from each draw)."""

    def compiled_loss(self, fn):
        """A strategy's loss ``fn`` compiled, for ``compile=True`` (torch: ``torch.compile``
        per shape, eager again where compiling fails; JAX: ``fn`` itself, as its engine
        compiles whole steps with ``jax.jit`` anyway)."""

    # ----------------------------------------------------- a strategy's own state
    def new_state(self, rng_seed=None):
        """A strategy's own parameters and random stream (``next_key()`` hands out keys
        where randomness is explicit, None where it is a global generator)."""

    def entered(self, state) -> ContextManager:
        """Make ``state`` what programs see while a strategy's call runs; one thread at a
        time; on an exception the handler stacks (and plate allocators) are left as they
        were before the call."""

    def split_rng(self, rng):
        """Two independent keys from one (None, None where randomness is global)."""

    def preserved_rng(self) -> ContextManager:
        """A block whose draws do not change the random stream seen after it."""

    def no_grad(self) -> ContextManager:
        """A block without gradient tracking."""

    # ------------------------------------------------------ dependency tracking
    def dependencies(self, fn, args, kwargs):
        """site -> the sites its distribution was computed from."""


def missing_members(backend):
    """The members of :class:`Backend` that ``backend`` lacks (an empty list when it
    implements the protocol)."""
    names = [n for n in dir(Backend) if not n.startswith("_")] + list(Backend.__annotations__)
    return sorted({n for n in names if not hasattr(backend, n)})

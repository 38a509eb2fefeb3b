"""TRICE: a model's parameters by MCMC-EM, one persistent latent per data point (Phan,
Hoffman et al., "Training Chain-of-Thought via Latent-Variable Inference", NeurIPS 2023).

The model draws a latent "rationale" ``z_i`` and scores the observation ``y_i`` for each
element of its data plate. TRICE keeps a memory: one ``z_i`` per element, its rows the
plate's indices (a minibatch is the plate's ``subsample_size``). Each step proposes
``z~_i`` from the current model, accepts it by the independence Metropolis-Hastings rule
for the target p(z | x, y) (the ratio p(y | z~) / p(y | z): for an answer check that is 0
or 1, "accept iff the proposal explains the answer"), and steps the parameters along

    (1/M) sum_i [grad log p(z'_i, y_i | x_i) - beta_i grad log p(z~_i | x_i)],

``z'`` the updated memory and ``beta_i`` the leave-one-out fraction of accepted proposals
among the other elements whose memory was valid (the control variate: zero in mean, as
the score of the proposal's own distribution). Elements without a valid memory (no
rationale yet that explains their answer) contribute nothing.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import TRICE, Adam
    >>> def model(y):   # a hidden coin per data point; y_i says whether it came up 1
    ...     logit = ppl.param("logit", torch.tensor(0.0))
    ...     with ppl.plate("data", len(y)):
    ...         z = ppl.sample("z", dist.Bernoulli(logits=logit))
    ...         ppl.factor("check", torch.where(z == y, 0.0, -float("inf")))
    >>> trice = TRICE(model, Adam(0.1), rng_seed=0)
    >>> _ = trice.run(torch.ones(8), num_steps=100, progress=False)
    >>> float(trice.params["logit"]) > 2   # every answer is 1: p(z = 1) grows
    True
"""

import math

from ppl.errors import NonFiniteError, SiteError
from ppl.validation import check_observations

from ..arguments import count
from ..engines import make_engine
from ..interrupts import deferred_interrupts
from ..optim import Adam
from ..program import check_nesting_argument, check_proposes_latents, checked_nesting, common_plate
from ..strategy import Strategy
from ..weights import WeightLayout, total_log_weight


class TRICE(Strategy):
    """MCMC-EM with a persistent memory of latent values, one per data-plate element.

    Arguments:
        model: a program whose latent and observed sites all lie in one data plate (its
            ``subsample_size``, if any, is the minibatch).
        optimizer: ``inference.optim`` spec (default ``Adam()``).
        proposal: None (proposals from the current model, as the paper's) or a guide
            program over the same latent sites and data plate (an independence proposal
            q(z | x, y); the general Metropolis-Hastings ratio then includes p(z) / q(z)).
        control_variate: subtract the leave-one-out control variate (None: with proposals
            from the model, which it needs to be zero in mean).
        num_gradient_terms: keep only this many of the 2M weighted gradient terms, chosen
            by systematic resampling in proportion to their weights' sizes (unbiased; None
            keeps all).
        max_plate_nesting, rng_seed, params: as for ``VI``.
    """

    def __init__(self, model, optimizer=None, *, proposal=None, control_variate=None,
                 num_gradient_terms=None, max_plate_nesting=None, rng_seed=None, params=None):
        check_nesting_argument("TRICE", max_plate_nesting)
        if num_gradient_terms is not None:
            num_gradient_terms = count("TRICE", "num_gradient_terms", num_gradient_terms)
        if control_variate is None:
            control_variate = proposal is None
        if not isinstance(control_variate, bool):
            raise ValueError(f"TRICE: control_variate must be True, False or None, got {control_variate!r}")
        if control_variate and proposal is not None:
            raise ValueError("TRICE: the control variate is the proposal's score under the model, zero in "
                             "mean only for proposals from the model; with proposal= pass "
                             "control_variate=False (or leave it None)")
        super().__init__(model, rng_seed)
        self.proposal = proposal
        self.control_variate = control_variate
        self.num_gradient_terms = num_gradient_terms
        self.max_plate_nesting = max_plate_nesting
        self.engine = make_engine(self.backend.name, optimizer if optimizer is not None else Adam(),
                                  self.state, owners=(model, proposal), initial=params)
        self._aux = None  # (memory: site -> [N, ...], valid: [N])
        self._ready = False

    # ----------------------------------------------------------------- set-up
    def _setup(self, args, kwargs):
        params, rng = self.engine.loss_inputs()
        with self.backend.preserved_rng(), self.backend.no_grad():
            trace = self.backend.run(self.model, args, kwargs, params=params, rng=rng)
        check_observations(trace)
        self._plates = checked_nesting("TRICE", self.max_plate_nesting, [trace])
        latent = list(trace.latent.values())
        if not latent:
            raise SiteError("TRICE: the model has no latent site; TRICE keeps a latent value per "
                            "data point (fit a model without latents by maximum likelihood with VI)")
        plate = common_plate(latent)
        if plate is None:
            raise SiteError(f"TRICE: latent site {latent[0].name!r} lies in no plate that every latent "
                            "site shares; TRICE keeps one latent value per element of a data plate",
                            site=latent[0].name)
        for site in trace.sites.values():
            if plate not in site.plates:
                raise SiteError(f"TRICE: site {site.name!r} lies outside the data plate {plate.name!r}; "
                                "every latent and observed site must belong to a data point",
                                site=site.name)
        traces = [trace]
        if self.proposal is not None:
            traces.append(self._check_proposal(args, kwargs, params, trace, plate))
        if not any(site.observed for site in trace.sites.values()):
            raise SiteError("TRICE: the model observes nothing, so no proposal can be checked against "
                            "an answer; give each data point an observed site (obs=) or a ppl.factor")
        self._plate = (plate.name, plate.dim)
        self._events = {site.name: len(site.fn.event_shape) for site in latent}
        if self._aux is None:
            size = trace.plate_sizes.get(plate.name, plate.size)
            memory = {}
            for site in latent:
                rows = self._rows(site.value, site.name)
                memory[site.name] = self.ops.zeros((size,) + tuple(rows.shape[1:]), rows)
            self._aux = (memory, self.ops.zeros((size,), self.ops.asarray([True])))
        self.engine.discover(traces, create_optimizer=False)
        self._ready = True

    def _check_proposal(self, args, kwargs, params, model_trace, plate):
        """The guide proposes every latent site of the model, in the same data plate."""
        with self.backend.preserved_rng(), self.backend.no_grad():
            guide = self.backend.run(self.proposal, args, kwargs, params=params,
                                     rng=self.engine.loss_inputs()[1])
        check_proposes_latents("TRICE", guide, model_trace)
        for name in model_trace.latent:
            if plate.name not in {p.name for p in guide.latent[name].plates}:
                raise SiteError(f"TRICE: the proposal's site {name!r} lies outside plate "
                                f"{plate.name!r}; propose each data point's latents in the model's "
                                "data plate", site=name)
        return guide

    def _rows(self, value, name):
        """A site's value with its data-plate axis first."""
        axis = self.ops.ndim(value) - self._events[name] + self._plate[1]
        return self.ops.moveaxis(value, axis, 0)

    def _unrows(self, rows, name):
        axis = self.ops.ndim(rows) - self._events[name] + self._plate[1]
        return self.ops.moveaxis(rows, 0, axis)

    # ------------------------------------------------------------------ steps
    def step(self, *args, **kwargs):
        """One TRICE update; returns the negative mean log joint of the updated memory
        (elements without a valid memory count 0)."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            with deferred_interrupts():
                value, aux = self.engine.step(self._loss, self._aux, args, kwargs)
                if not math.isfinite(value):
                    raise NonFiniteError("TRICE: the step's log densities are not finite (a parameter "
                                         "or an observation's log density became NaN)")
                self._aux = aux
                self.history.append(value)
                self.step_count += 1
        return value

    def _loss(self, params, key, aux, args, kwargs):
        """The engine's loss, pure in (params, key, aux): (surrogate, value, traces, {}, the
        next memory)."""
        backend, ops = self.backend, self.ops
        memory, valid = aux
        keys = [None] * 6  # proposal, memory run, acceptance, terms, the guide's two runs
        if key is not None:
            for k in range(5):
                keys[k], key = backend.split_rng(key)
            keys[5] = key
        name = self._plate[0]
        if self.proposal is None:
            proposal = backend.run(self.model, args, kwargs, params=params, rng=keys[0])
            drawn = proposal
        else:  # the guide draws; the model scores its values
            drawn = backend.run(self.proposal, args, kwargs, params=params, rng=keys[4])
        index = drawn.subsamples.get(name)
        if index is None:
            index = ops.arange(valid.shape[0])
        was_valid = valid[index]
        proposed = {site: ops.stop_gradient(self._rows(drawn.sites[site].value, site)) for site in memory}
        if self.proposal is not None:
            proposal = backend.run(self.model, args, kwargs, replay=self._replay(proposed, index, drawn),
                                   params=params, rng=keys[0])
        held = {site: _where_rows(ops, was_valid, memory[site][index], proposed[site]) for site in memory}
        kept = backend.run(self.model, args, kwargs, replay=self._replay(held, index, drawn),
                           params=params, rng=keys[1])
        prior_new, lik_new = self._per_element(proposal)
        prior_old, lik_old = self._per_element(kept)
        log_u = ops.log(ops.uniform(tuple(was_valid.shape), prior_new, keys[2]))
        gain = lik_new - lik_old
        if self.proposal is not None:  # independence MH: p(z~, y) q(z) / (p(z, y) q(z~))
            guide_old = backend.run(self.proposal, args, kwargs, replay=self._replay(held, index, drawn),
                                    params=params, rng=keys[5])
            log_q_new, log_q_old = self._per_element(drawn)[0], self._per_element(guide_old)[0]
            gain = gain + prior_new - prior_old - log_q_new + log_q_old
        gain = ops.stop_gradient(gain)
        accept = ops.where(was_valid, log_u < gain, True)  # no valid memory: take the proposal
        now_valid = ops.where(accept, lik_new > -math.inf, was_valid)
        new_memory = {site: ops.put_rows(memory[site], index,
                                         _where_rows(ops, accept, proposed[site], held[site]))
                      for site in memory}
        new_valid = ops.put_rows(valid, index, now_valid)
        # gradient terms: the updated memory's log joint, minus beta_i times the proposal's log prior
        M = was_valid.shape[0]
        joint = ops.where(accept, prior_new, prior_old) + ops.where(
            now_valid, ops.where(accept, lik_new, lik_old), 0.0)
        joint = ops.where(now_valid, joint, 0.0)
        weights = [ops.astype(now_valid, prior_new) / M]
        terms = [joint]
        if self.control_variate:
            v = ops.astype(was_valid, prior_new)
            a = ops.astype(accept, prior_new) * v
            others = ops.sum(v) - v
            beta = ops.where(others > 0, (ops.sum(a) - a) / ops.maximum(others, 1.0), 0.0)
            weights.append(-beta * v / M)
            terms.append(prior_new)
        weights = ops.stop_gradient(ops.concatenate(weights, 0))
        if self.num_gradient_terms is not None:
            weights = _resampled_weights(ops, weights, self.num_gradient_terms, keys[3])
        surrogate = -ops.sum(weights * ops.concatenate(terms, 0))
        value = ops.stop_gradient(ops.sum(joint) / M)
        return surrogate, value, (proposal, kept), {}, (new_memory, new_valid)

    def _replay(self, rows, index, drawn):
        """What a run replays: each site's rows in its own layout, and the plate's indices."""
        replay = {site: self._unrows(value, site) for site, value in rows.items()}
        if self._plate[0] in drawn.subsamples:
            replay[self._plate[0]] = index
        return replay

    def _per_element(self, trace):
        """(log p(z_i | x_i), log p(y_i | z_i, x_i)) per data-plate element, each ``[M]``."""
        layout = WeightLayout(self._plates, False, (self._plate,))
        latent = [s for s in trace.sites.values() if not s.observed]
        observed = [s for s in trace.sites.values() if s.observed]
        sums = (total_log_weight(self.ops, layout, group) for group in (latent, observed))
        return tuple(total if isinstance(total, float) else self.ops.reshape(total, (-1,))
                     for total in sums)  # a float 0 where a group has no site (a guide's observed)

    # ------------------------------------------------------------ what it has
    @property
    def params(self):
        """The trained parameters (constrained values) by name."""
        with self.entered():
            return self.engine.trained_params()

    @property
    def memory(self):
        """(site -> ``[N, ...]`` the memory's latent values, ``[N]`` whether each explains its
        data point), or None before the first step."""
        return self._aux

    @memory.setter
    def memory(self, value):
        """Start from given latent values (e.g. drawn from the exact posterior), with a
        validity flag per data point; the set-up's shapes still apply."""
        self._aux = value

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        state = super().state_dict()
        state["engine"] = self.engine.state_dict()
        state["memory"] = None if self._aux is None else {"values": dict(self._aux[0]), "valid": self._aux[1]}
        return state

    def check_state_dict(self, state):
        found = super().check_state_dict(state)
        if found or "engine" not in state:
            return found or "its optimiser state is missing"
        return self.engine.check_state_dict(state["engine"])

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.engine.load_state_dict(state["engine"])
        saved = state.get("memory")
        if saved is not None:
            ops = self.ops
            self._aux = ({n: ops.asarray(v) for n, v in saved["values"].items()}, ops.asarray(saved["valid"]))


def _where_rows(ops, flags, a, b):
    """Row i of ``a`` where ``flags[i]``, else of ``b``."""
    shape = tuple(flags.shape) + (1,) * (ops.ndim(a) - 1)
    return ops.where(ops.reshape(flags, shape), a, b)


def _resampled_weights(ops, weights, num, key):
    """``num`` of the terms kept by systematic resampling in proportion to |weight|, each
    kept term weighted sign(w) * sum|w| / num per copy: unbiased for every weight."""
    sizes = ops.where(weights < 0, -weights, weights)
    total = ops.sum(sizes)
    points = (ops.astype(ops.arange(num), weights) + ops.uniform((1,), weights, key)) * (total / num)
    chosen = ops.searchsorted(ops.cumsum(sizes, 0), points)
    copies = ops.sum(ops.astype(ops.one_hot(chosen, weights.shape[0]), weights), 0)
    return ops.where(weights < 0, -1.0, 1.0) * copies * (total / num)

"""Model-side enumeration: discrete model sites marked ``infer={"enumerate": "parallel"}``
(Pyro's ``config_enumerate``) that the guide does not sample are summed out exactly.

The model runs under Pyro's ``EnumMessenger``, which lays each such site's support on a
batch dimension left of the plates and, inside ``pyro.markov``, recycles dimensions so
that chains of any length fit torch's 64 dimensions; it annotates every site with
``_dim_to_id``, the unique variable behind each enumerated dimension of its log density.
:func:`log_joint` names each dimension of each site's log density (a plate, or an
enumerated variable) and hands the plated sum-product to Pyro's tensor variable
elimination (``pyro.ops.contract.contract_to_tensor`` in the log ring: sums over
variables, products over plates), keeping the particle plate and the plate of
per-element weights.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import VI, ELBO
    >>> def model(x):
    ...     with ppl.plate("data", len(x)):
    ...         c = ppl.sample("c", dist.Categorical(torch.ones(2) / 2), infer={"enumerate": "parallel"})
    ...         ppl.sample("x", dist.Normal(torch.tensor([-1.0, 1.0])[c], 1.0), obs=x)
    >>> def guide(x):
    ...     pass
    >>> exact = float(dist.MixtureSameFamily(dist.Categorical(torch.ones(2) / 2),
    ...     dist.Normal(torch.tensor([-1.0, 1.0]), 1.0)).log_prob(torch.tensor([0.3, 2.0])).sum())
    >>> abs(-VI(model, guide, ELBO()).loss(torch.tensor([0.3, 2.0])) - exact) < 1e-5
    True
"""

from collections import OrderedDict, namedtuple

import opt_einsum
from opt_einsum import shared_intermediates
from pyro.infer import infer_discrete
from pyro.ops.contract import contract_tensor_tree, contract_to_tensor
from pyro.ops.rings import LogRing

from ppl.errors import SiteError, UnsupportedError


_MAX_UNSCOPED = 50  # torch allows 64 dimensions; plates and particles take some


def model_enumerated(model_tr, guide_tr):
    """Names of the model's latent sites marked for parallel enumeration that the guide
    lacks; a clear error for one whose distribution has no finite support."""
    names = []
    for name, site in model_tr.latent.items():
        if guide_tr is not None and name in guide_tr.latent:
            continue
        if site.infer.get("enumerate") != "parallel":
            continue
        if not getattr(site.fn, "has_enumerate_support", False):
            raise SiteError(f"site {name!r} is marked infer={{'enumerate': 'parallel'}} but "
                            f"{type(site.fn).__name__} has no finite support to enumerate", site=name)
        check_batch_in_plates(site)
        if site.infer.get("num_samples") is not None:  # Pyro's sampled enumeration
            raise UnsupportedError(f"site {name!r}: infer={{'num_samples': ...}} (enumerating a "
                                   "sample of the support)", hint="leave it out to sum the whole "
                                   "support exactly")
        names.append(name)
    unscoped = [n for n in names if "_markov_scope" not in model_tr[n].infer]
    if len(unscoped) > _MAX_UNSCOPED:
        name = unscoped[_MAX_UNSCOPED]
        raise SiteError(f"site {name!r}: {len(unscoped)} enumerated sites outside ppl.markov (or "
                        "pyro.markov) would need a tensor dimension each, beyond torch's 64; "
                        "write the chain as `for t in ppl.markov(range(T)):` so that its "
                        "dimensions are recycled", site=name)
    return names


def check_model_enum_within_guide_enum(model_tr, model_enum, guide_tr, guide_enum):
    """Pyro's constraint on enumerating in both programs: every plate of a guide-enumerated
    site encloses every model-enumerated site. A model sum more global than a guide's
    enumerated variable would multiply that variable's values across the plate's elements."""
    enclosing = set.intersection(*({p.name for p in model_tr[name].plates} for name in model_enum))
    for name in guide_enum:
        for plate in guide_tr[name].plates:
            if plate.name not in enclosing:
                outside = sorted(n for n in model_enum
                                 if plate.name not in {p.name for p in model_tr[n].plates})
                raise SiteError(
                    f"guide site {name!r} is enumerated inside plate {plate.name!r}, but the model "
                    f"enumerates sites {outside} outside that plate: model enumeration may be no "
                    "more global than guide enumeration; enumerate those in the guide as well, or "
                    f"enumerate {name!r} in the model instead", site=name)


def check_batch_in_plates(site):
    """An enumerated site's batch dimensions must all be plates: a batch of values outside
    any plate would share one enumeration dimension without meaning to."""
    plate_dims = {p.dim for p in site.plates if p.dim is not None}
    batch = site.fn.batch_shape
    for i, size in enumerate(batch):
        dim = i - len(batch)
        if size > 1 and dim not in plate_dims:
            raise SiteError(f"site {site.name!r} is enumerated but its batch dimension {dim} (size "
                            f"{size}) is not a plate; enclose it in ppl.plate(...) or use "
                            ".to_event()", site=site.name)


def log_joint(sites, enumerated, keep, backend="torch"):
    """log sum over the ``enumerated`` sites of the product of the ``sites``' densities (a
    trace, or some of its sites in program order): a tensor over the plates named in
    ``keep`` (in that order; e.g. the particle plate), product-reduced over every other
    plate; and the names of those kept. On JAX, by funsor (:mod:`.enumeration_funsor`)."""
    if backend == "jax":
        from .enumeration_funsor import log_joint as funsor_log_joint

        return funsor_log_joint(sites, enumerated, keep)
    factors = NamedFactors(sites, enumerated)
    kept = [name for name in keep if name in factors.plate_symbol]
    return factors.contract(kept), kept


PlateDim = namedtuple("PlateDim", ["name", "dim"])
MarginalTerm = namedtuple("MarginalTerm", ["name", "log_prob", "plates"])


def marginal_terms(sites, enumerated, guide_enumerated, backend="torch"):
    """The model's log densities with its ``enumerated`` sites summed out while the guide's
    enumerated sites (``guide_enumerated``: name -> dim) stay, one term per connected group
    and plate context (Pyro's ``contract_tensor_tree``), each laid out by dimension as a
    site's log density is: ``log_prob``, ``plates`` (name, dim) and a ``name`` listing the
    sites it sums; the sites no sum involves, as they are. The guide's weights then take
    the expectation over the guide's values."""
    if backend == "jax":
        from .enumeration_funsor import marginal_terms as funsor_marginal_terms

        return funsor_marginal_terms(sites, enumerated, guide_enumerated)
    sites = list(sites)
    factors = NamedFactors(sites, enumerated, guide_enumerated)
    summing = factors.summing()
    dim_of = dict(factors.plate_dim)
    dim_of.update({factors.id_symbol[("guide", name)]: dim for name, dim in guide_enumerated.items()
                   if ("guide", name) in factors.id_symbol})
    plate_of = {symbol: name for name, symbol in factors.plate_symbol.items()}
    label = f"the sum over enumerated sites {sorted(enumerated)}"
    terms = [site for i, site in enumerate(sites) if i not in summing]
    for term in factors.contract_tree(summing):
        symbols = sorted(term._pyro_dims, key=dim_of.__getitem__)
        if symbols:
            term = term.permute(*map(term._pyro_dims.index, symbols))
            shape = [1] * -dim_of[symbols[0]]
            for symbol, size in zip(symbols, term.shape):
                shape[dim_of[symbol]] = size
            term = term.reshape(shape)
        plates = tuple(PlateDim(plate_of[s], dim_of[s]) for s in symbols if s in plate_of)
        terms.append(MarginalTerm(label, term, plates))
    return terms


class NamedFactors:
    """Each site's log density with its dimensions named: a plate by the plate's name, an
    enumerated dimension by the variable that Pyro's ``EnumMessenger`` allocated to it
    (``_dim_to_id``; ``pyro.markov`` recycles a dimension for new variables), a guide's
    enumerated site (``guide_enumerated``: name -> dim) by its name."""

    def __init__(self, sites, enumerated, guide_enumerated=None):
        symbols = map(opt_einsum.get_symbol, range(10 ** 6))
        self.plate_symbol, self.id_symbol, self.plate_dim = {}, {}, {}
        guide_at = {dim: ("guide", name) for name, dim in (guide_enumerated or {}).items()}
        self.inputs, self.operands = [], []
        sites = list(sites)
        for site in sites:
            if site.name in enumerated:
                _check_recycling(site)
            log_prob = site.log_prob
            dims_of = {p.dim: p.name for p in site.plates if p.dim is not None}
            dim_to_id = site.infer.get("_dim_to_id", {})
            letters, squeeze = [], []
            for i, size in enumerate(log_prob.shape):
                dim = i - log_prob.dim()
                if size == 1:
                    squeeze.append(i)
                elif dim in dims_of:
                    letters.append(self._symbol(self.plate_symbol, dims_of[dim], symbols))
                    self.plate_dim[letters[-1]] = dim
                elif dim in guide_at:
                    letters.append(self._symbol(self.id_symbol, guide_at[dim], symbols))
                elif dim in dim_to_id:
                    letters.append(self._symbol(self.id_symbol, dim_to_id[dim], symbols))
                else:
                    raise SiteError(f"site {site.name!r}: its log density has a dimension {dim} of "
                                    f"size {size} that is neither a plate nor an enumerated site",
                                    site=site.name)
            for i in reversed(squeeze):
                log_prob = log_prob.squeeze(i)
            self.inputs.append("".join(letters))
            self.operands.append(log_prob)
        self.scales = self._unscale(sites, enumerated)

    def _unscale(self, sites, enumerated):
        """Each term's scale, divided out of its log density: a sum over enumerated sites is
        taken of the unscaled densities and its log scaled after, as Pyro does, when every
        site it involves has the same scale (a subsampled plate, a ``poutine.scale`` around the
        program); where the enumerated sites have scale 1, other sites' scales stay inside."""
        summed = self._summed()
        parent = list(range(len(sites)))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first_with = {}
        for i, dims in enumerate(self.inputs):  # sites sharing an enumerated variable: one sum
            for symbol in summed.intersection(dims):
                parent[root(i)] = root(first_with.setdefault(symbol, i))
        groups = {}
        for i in range(len(sites)):
            groups.setdefault(root(i), []).append(i)
        scales = [1.0] * len(sites)
        for members in groups.values():
            own = [sites[i] for i in members if sites[i].name in enumerated]
            if all(_is_one(site.scale) for site in own):
                continue
            scale = own[0].scale
            for i in members:
                if not isinstance(sites[i].scale, (int, float)) or sites[i].scale != scale:
                    raise UnsupportedError(
                        f"site {sites[i].name!r}: enumerated site {own[0].name!r} has scale {scale} "
                        f"(a subsampled plate or poutine.scale) but {sites[i].name!r}, in the same sum, "
                        f"has scale {sites[i].scale}", hint="give the sites summed together one scale: "
                        "subsample the plates they share, not an inner one alone")
            for i in members:
                scales[i] = float(scale)
                self.operands[i] = self.operands[i] / scale
        return scales

    @staticmethod
    def _symbol(table, key, symbols):
        if key not in table:
            table[key] = next(symbols)
        return table[key]

    def _summed(self):
        """The symbols of the model's enumerated variables (the guide's are keyed by tuples)."""
        return {symbol for key, symbol in self.id_symbol.items() if not isinstance(key, tuple)}

    def summing(self):
        """The indices of the terms that a sum over an enumerated variable involves."""
        summed = self._summed()
        return {i for i, dims in enumerate(self.inputs) if summed.intersection(dims)}

    def _tree(self, scale=None, only=None):
        """The log densities (of the terms with that ``scale``, or all; of those in ``only``,
        or all) by plate context, each carrying its symbols; the variables to sum."""
        tree, dim_to_size = OrderedDict(), {}
        plate_set = set(self.plate_symbol.values())
        for i, (dims, term, term_scale) in enumerate(zip(self.inputs, self.operands, self.scales)):
            if (scale is not None and term_scale != scale) or (only is not None and i not in only):
                continue
            term = term[...]  # a fresh view to carry the symbols
            term._pyro_dims = dims
            dim_to_size.update(zip(dims, term.shape))
            tree.setdefault(frozenset(plate_set.intersection(dims)), []).append(term)
        return tree, dim_to_size, self._summed().intersection(dim_to_size)

    def contract_tree(self, only=None):
        """Sum the model's enumerated variables out, keeping the plates (reduced only where a
        sum needs it) and the guide's variables: a list of log terms with ``_pyro_dims`` (of
        the terms in ``only``, or all)."""
        terms = []
        for scale in sorted({self.scales[i] for i in (range(len(self.scales)) if only is None else only)}):
            tree, dim_to_size, sum_dims = self._tree(scale, only)
            with shared_intermediates() as cache:
                ring = LogRing(cache, dim_to_size=dim_to_size)
                contracted = contract_tensor_tree(tree, sum_dims, ring=ring)
            terms += [term * scale if scale != 1.0 else term
                      for group in contracted.values() for term in group]
        return terms

    def contract(self, plates=(), variables=()):
        """Sum every other variable out and product-reduce every other plate, in log space
        (Pyro's tensor variable elimination): a tensor over ``plates`` (names) then
        ``variables`` (ids), in that order. Exact when no variable is kept; with variables
        kept, each plate slice is known up to a constant (normalise it) and the unscaled
        densities are the ones meant."""
        plate_out = "".join(self.plate_symbol[name] for name in plates)
        var_out = "".join(self.id_symbol[key] for key in variables)
        output = plate_out + var_out
        total = None
        for scale in [None] if variables or not self.scales else sorted(set(self.scales)):
            tree, dim_to_size, sum_dims = self._tree(scale)
            with shared_intermediates() as cache:
                ring = LogRing(cache, dim_to_size=dim_to_size)
                term = contract_to_tensor(tree, sum_dims, target_ordinal=frozenset(plate_out),
                                          target_dims=set(var_out), ring=ring)
            if term._pyro_dims != output:
                term = term.permute(*map(term._pyro_dims.index, output))
            term = term * scale if scale not in (None, 1.0) else term
            total = term if total is None else total + term
        return total


def _check_recycling(site):
    """A site whose distribution already varies along the dimension it is enumerated on
    read a variable whose dimension ppl.markov recycled (its history is too short): the
    sum would silently pair the wrong values."""
    dim = site.infer.get("_enumerate_dim")
    batch = site.fn.batch_shape
    if dim is not None and len(batch) >= -dim and batch[dim] != 1:
        raise SiteError(f"site {site.name!r}: enumeration dim conflict: its distribution depends on "
                        "a site whose enumeration dimension ppl.markov has already recycled for it; "
                        "increase the markov history (ppl.markov(..., history=k) with k the "
                        "chain's order)", site=site.name)


def _is_one(scale):
    return isinstance(scale, (int, float)) and scale == 1


def discrete_posterior(backend, model, values, args, kwargs, nesting, temperature, params=None, rng=None,
                       chain=False):
    """One joint draw (``temperature=1``) or the MAP assignment (``temperature=0``) of the
    model's latent sites that the guide's ``values`` leave out (its enumerated ones), by
    Pyro's ``infer_discrete`` (forward filtering, backward sampling or Viterbi), or on JAX
    NumPyro's (funsor); ``params`` and ``rng`` for the JAX run."""
    if temperature not in (0, 1):
        raise ValueError(f"infer_discrete: temperature must be 0 (MAP) or 1 (a sample), got {temperature!r}")
    replayed = backend.handlers.replay(model, values=values)
    if backend.name == "jax" and chain:
        # NumPyro's decoder took 0.5 GB at 12 steps and more than 24 GB at 30: site by site
        from .enumeration_funsor import sequential_discrete_posterior

        return sequential_discrete_posterior(backend, model, values, args, kwargs, nesting,
                                             temperature, params, rng)
    if backend.name == "jax":
        from numpyro.contrib.funsor import infer_discrete as numpyro_infer_discrete
        from numpyro.handlers import substitute

        decode_key, run_key = backend.split_rng(rng)
        # its inner runs are blocked from the outer handlers: the parameters go in here
        fn = numpyro_infer_discrete(substitute(replayed, data=params or {}),
                                    first_available_dim=-(nesting + 1), temperature=temperature,
                                    rng_key=decode_key)
        trace = backend.run(fn, args, kwargs, params=params, rng=run_key)
    elif backend.name == "torch":
        fn = infer_discrete(replayed, first_available_dim=-(nesting + 1), temperature=temperature)
        with backend.no_grad():
            trace = backend.run(fn, args, kwargs)
    else:
        raise UnsupportedError("the posterior of enumerated sites (infer_discrete)", backend=backend.name)
    return {name: site.value for name, site in trace.latent.items() if name not in values}

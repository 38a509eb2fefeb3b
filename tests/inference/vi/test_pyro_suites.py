"""Pyro's own suites as oracles: structure cases from pyro-ppl/pyro 1.9's
tests/infer/test_valid_models.py and gradient checks from its tests/infer/test_enum.py,
re-expressed and compared with Pyro on the same draws and the same parameter values.

Case (Pyro test, in test_valid_models.py unless said): plate_subsampled (test_plate_ok),
iplate_subsampled (test_iplate_ok), iplate_enum_subsampled (test_enum_discrete_iplate_single_ok),
plate_stack_and_plate (test_plate_stack_and_plate_ok), nested_plate_plate
(test_nested_plate_plate_ok), subsample_param (test_nested_plate_plate_subsample_param_ok),
enum_in_plates (test_enumerate_parallel_plate_ok), enum_in_model and enum_in_model_sampled_guide
(test_enum_in_model_ok), markov_dbn (test_enum_recycling_dbn), obs_mask (test_obs_mask_ok),
score_function (test_set_has_rsample_ok), factor_in_guide (test_factor_in_guide_ok),
nonempty_model_empty_guide (test_nonempty_model_empty_guide_ok), empty
(test_empty_model_empty_guide_ok). Rejected structures: test_variable_clash_in_model_error,
test_nonempty_model_empty_guide_error, test_plate_wrong_size_error, test_dim_allocation_error,
test_enum_in_model_diamond_error, test_enum_sequential_in_model_error, the model-guide enumeration
constraint (TraceEnum_ELBO's "no more global than guide enumeration"),
test_model_guide_shape_mismatch_error, test_model_guide_dim_mismatch_error,
test_no_plate_enum_discrete_batch_error, test_markov_history, test_enum_in_model_multi_scale_error.
Gradients (test_enum.py): test_non_mean_field_bern_bern_elbo_gradient,
test_bernoulli_pyramid_elbo_gradient, test_elbo_hmm_in_guide, test_hmm_enumerate_model,
test_elbo_enumerate_plates_1, test_elbo_enumerate_plate_2, test_hmm_enumerate_model_and_guide.
"""

import itertools
import math
from functools import partial

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.ops.indexing import Vindex
from torch.distributions import constraints

from inference import IWAE, VI, Adam, Score

ENUM = {"enumerate": "parallel"}
unit, simplex = constraints.unit_interval, constraints.simplex


def empty(*args):
    pass


def _probs(name, init):
    return pyro.param(name, init, constraint=simplex)


def same_draws(model, guide, theirs, *args, seed=0, **options):
    """(our loss, Pyro's loss) on the same random draws with the same parameter values; VI maps
    Pyro's objective to its own (Trace_ELBO -> ELBO, RenyiELBO(alpha=0) -> IWAE)."""
    vi = VI(model, guide, theirs, **options)
    vi.loss(*args)  # set-up: creates the parameters
    pyro.set_rng_seed(seed)
    mine = vi.loss(*args)
    pyro.set_rng_seed(seed)
    with vi.param_scope():
        return mine, theirs.loss(model, guide, *args)


# ------------------------------------------------------------ structure cases
def plates(kind, p):
    """test_valid_models' plate structures; the model draws with p = 0.5, the guide learns p."""
    if kind == "plate_subsampled":
        with pyro.plate("plate", 10, 5) as ind:
            pyro.sample("x", dist.Bernoulli(p).expand_by([len(ind)]))
    elif kind.startswith("iplate_subsampled"):  # sequential plates, 2 of 4 or 5 of 10 indices
        for i in pyro.plate("plate", *((10, 5) if kind.endswith("10") else (4, 2))):
            pyro.sample(f"x_{i}", dist.Bernoulli(p))
    elif kind == "plate_stack_and_plate":
        with pyro.plate_stack("plate_stack", (3, 4)), pyro.plate("plate", 7):
            pyro.sample("x", dist.Bernoulli(p))
    elif kind == "nested_plate_plate":
        with pyro.plate("plate_outer", 10, 5) as outer:
            pyro.sample("x", dist.Bernoulli(p).expand_by([len(outer)]))
            with pyro.plate("plate_inner", 11, 6) as inner:
                pyro.sample("y", dist.Bernoulli(p).expand_by([len(inner), len(outer)]))


def twin(kind, enumerate_guide=False):
    def guide():
        plates(kind, pyro.param("p", torch.tensor(0.3), constraint=unit))
    return partial(plates, kind, torch.tensor(0.5)), config_enumerate(guide) if enumerate_guide else guide


def subsample_param(guide):  # the guide's params are subsampled by the plates (event_dim)
    with pyro.plate("plate_outer", 10, 5):
        px = pyro.param("px", torch.linspace(0.1, 0.9, 10), constraint=unit, event_dim=0) if guide else 0.2
        pyro.sample("x", dist.Bernoulli(px), infer=ENUM if guide else {})
        with pyro.plate("plate_inner", 11, 6):
            py = pyro.param("py", torch.rand(11, 10, generator=torch.Generator().manual_seed(0)),
                            constraint=unit, event_dim=0) if guide else 0.2
            pyro.sample("y", dist.Bernoulli(py), infer=ENUM if guide else {})


def enum_in_plates(probs):
    pyro.sample("x2", dist.Categorical(probs("q2", torch.tensor([0.3, 0.7]))))
    with pyro.plate("outer", 3):
        pyro.sample("x34", dist.Categorical(probs("q34", torch.ones(3, 4) / 4)))
        with pyro.plate("inner", 5):
            pyro.sample("x536", dist.Categorical(probs("q536", torch.ones(5, 3, 6) / 6)))


def enum_in_model(guide_enumerates):
    """test_enum_in_model_ok's chain a..g: the model enumerates c and f (and b, e when the
    guide leaves them out); the guide samples a and d (and enumerates b and e)."""
    def model():
        p = pyro.param("p", torch.tensor(0.25))
        a = pyro.sample("a", dist.Bernoulli(p))
        b = pyro.sample("b", dist.Bernoulli(p + a / 2), infer={} if guide_enumerates else ENUM)
        c = pyro.sample("c", dist.Bernoulli(p + b / 2), infer=ENUM)
        d = pyro.sample("d", dist.Bernoulli(p + c / 2))
        e = pyro.sample("e", dist.Bernoulli(p + d / 2), infer={} if guide_enumerates else ENUM)
        f = pyro.sample("f", dist.Bernoulli(p + e / 2), infer=ENUM)
        pyro.sample("g", dist.Bernoulli(p + f / 2), obs=torch.tensor(0.0))

    def guide():
        q = pyro.param("q", torch.tensor(0.4), constraint=unit)
        a = pyro.sample("a", dist.Bernoulli(q))
        b = pyro.sample("b", dist.Bernoulli(q + a / 2), infer=ENUM) if guide_enumerates else a / 2
        d = pyro.sample("d", dist.Bernoulli(q + b / 2))
        if guide_enumerates:
            pyro.sample("e", dist.Bernoulli(q + d / 2), infer=ENUM)
    return model, guide


@config_enumerate
def dbn_model():  # x -> x -> x enumerated states, y enumerated occlusions, z observed
    p = _probs("p", torch.ones(3, 3) / 3 + torch.eye(3))
    q, r = _probs("q", torch.tensor([0.4, 0.6])), _probs("r", torch.ones(3, 2, 4) / 4)
    x = 0
    for t in pyro.markov(range(20)):
        x = pyro.sample(f"x_{t}", dist.Categorical(p[x]))
        y = pyro.sample(f"y_{t}", dist.Categorical(q))
        pyro.sample(f"z_{t}", dist.Categorical(Vindex(r)[x, y]), obs=torch.tensor(t % 4))


MIXTURE_DATA = torch.tensor([-2.1, -1.7, 0.3, 2.2, 1.9, -0.4, 2.5, -2.3, 0.1, 1.6])


def enum_in_subsampled_plate(guide):
    """A mixture whose assignments are summed out inside a subsampled plate (scale 10 / 4),
    beside a global shift the guide samples."""
    loc = pyro.param("shift_loc", torch.tensor(0.2)) if guide else 0.0
    shift = pyro.sample("shift", dist.Normal(loc, 0.5 if guide else 1.0))
    if guide:
        return
    probs = _probs("weights", torch.tensor([0.3, 0.7]))
    with pyro.plate("data", 10, subsample_size=4) as ind:
        c = pyro.sample("c", dist.Categorical(probs), infer=ENUM)
        pyro.sample("x", dist.Normal(torch.tensor([-2.0, 2.0])[c] + shift, 1.0), obs=MIXTURE_DATA[ind])


def obs_mask(guide, mask=torch.tensor([False, True, False])):
    """Missing data: the guide samples the model's auxiliary site "y_unobserved" where obs_mask is off."""
    scale = pyro.param("scale", torch.tensor(1.0), constraint=constraints.positive) if guide else 1.0
    x = pyro.sample("x", dist.Normal(pyro.param("loc", torch.tensor(0.0)) if guide else 0.0, scale))
    with pyro.plate("plate", 3), poutine.mask(mask=~mask if guide else True):
        if guide:
            pyro.sample("y_unobserved", dist.Normal(x, 1.0))
        else:
            pyro.sample("y", dist.Normal(x, 1.0), obs=torch.full((3,), 7.0), obs_mask=mask)


def small(kind):
    if kind == "observed":
        pyro.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1), obs=torch.tensor([0.3, -0.2]))
    elif kind.endswith("model"):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        if kind == "score_model":
            pyro.sample("x", dist.Normal((z * 100).clamp(min=0, max=1), 1.0), obs=torch.tensor(0.0))
    else:  # the score-function path (has_rsample switched off), or a factor in the guide
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("z", dist.Normal(loc, 1.0).has_rsample_(kind == "factor"))
        if kind == "factor":
            pyro.factor("f", pyro.param("f_value", torch.tensor(0.5)), has_rsample=True)




def enum_elbo(nesting):
    # max_plate_nesting given: guessing it runs the programs once and draws subsample indices
    return partial(TraceEnum_ELBO, max_plate_nesting=nesting)


# name: (model, guide, Pyro ELBO factory, args, enumerated in "guide"/"model"/"both"/None)
CASES = {
    "plate_subsampled": (*twin("plate_subsampled"), Trace_ELBO, (), None),
    "iplate_subsampled": (*twin("iplate_subsampled"), Trace_ELBO, (), None),
    "iplate_enum_subsampled": (*twin("iplate_subsampled_10", True), enum_elbo(0), (), "guide"),
    "plate_stack_and_plate": (*twin("plate_stack_and_plate"), Trace_ELBO, (), None),
    "nested_plate_plate": (*twin("nested_plate_plate"), Trace_ELBO, (), None),
    "subsample_param": (partial(subsample_param, False), partial(subsample_param, True), enum_elbo(2),
                        (), "guide"),
    "enum_in_plates": (partial(enum_in_plates, lambda name, init: init),
                       config_enumerate(partial(enum_in_plates, _probs)), enum_elbo(2), (), "guide"),
    "enum_in_model": (*enum_in_model(True), enum_elbo(0), (), "both"),
    "enum_in_model_sampled_guide": (*enum_in_model(False), enum_elbo(0), (), "model"),
    "markov_dbn": (dbn_model, empty, enum_elbo(0), (), "model"),
    "enum_in_subsampled_plate": (partial(enum_in_subsampled_plate, False),
                                 partial(enum_in_subsampled_plate, True), enum_elbo(1), (), "model"),
    "obs_mask": (partial(obs_mask, False), partial(obs_mask, True), Trace_ELBO, (), None),
    "score_function": (partial(small, "score_model"), partial(small, "score"), Trace_ELBO, (), None),
    "factor_in_guide": (partial(small, "z_model"), partial(small, "factor"), Trace_ELBO, (), None),
    "nonempty_model_empty_guide": (partial(small, "observed"), empty, Trace_ELBO, (), None),
    "empty": (empty, empty, Trace_ELBO, (), None),
}


def cases(check):
    # IWAE takes no guide enumeration, Pyro's RenyiELBO no model enumeration
    return [name for name, (*_, enum) in CASES.items() if check != "iwae" or enum is None]


@pytest.mark.parametrize("name", cases("loss"))
def test_loss_equals_pyros_on_the_same_draws(name):
    model, guide, Elbo, args, _ = CASES[name]
    for seed in (0, 1):
        ours, theirs = same_draws(model, guide, Elbo(), *args, seed=seed)
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5), seed


@pytest.mark.parametrize("name", cases("particles"))
def test_sequential_particles_equal_pyros(name):
    model, guide, Elbo, args, _ = CASES[name]
    ours, theirs = same_draws(model, guide, Elbo(num_particles=3), *args, vectorize_particles=False)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


def test_iwae_of_an_empty_program_is_zero():
    # Pyro's RenyiELBO, the oracle of the test below, raises TypeError here (it stacks Python
    # floats); with no site, p = q = 1 and the bound is log 1 (ours gave log 3 before)
    for vectorize in (True, False):
        vi = VI(empty, empty, IWAE(3), vectorize_particles=vectorize)
        assert vi.loss() == 0.0 and vi.evaluate(num_particles=5) == 0.0


@pytest.mark.parametrize("name", [c for c in cases("iwae") if c != "empty"])
def test_iwae_equals_pyros_renyi_at_alpha_0(name):
    model, guide, _, args, _ = CASES[name]
    ours, theirs = same_draws(model, guide, RenyiELBO(alpha=0, num_particles=3), *args,
                              vectorize_particles=False)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", cases("steps"))
def test_a_few_steps_have_finite_losses(name):
    model, guide, Elbo, args, enum = CASES[name]
    for objective in [Elbo()] + ([IWAE(3)] if enum in (None, "model") else []):
        vi = VI(model, guide, objective, Adam(lr=0.01), rng_seed=0)
        losses = [vi.step(*args) for _ in range(3)]
        assert all(math.isfinite(loss) for loss in losses), (objective, losses)


# ------------------------------------------- structures Pyro rejects: ours too
def rejected(kind):
    if kind == "clash":
        pyro.sample("x", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Bernoulli(0.5))
    elif kind == "wrong_size":
        with pyro.plate("plate", 10, 5) as ind:
            pyro.sample("x", dist.Bernoulli(0.5).expand_by([1 + len(ind)]))
    elif kind == "colliding_dims":
        with pyro.plate("plate_outer", 10, 5, dim=-2):
            with pyro.plate("plate_inner_1", 11, 6), pyro.plate("plate_inner_2", 12, 7, dim=-1):
                pyro.sample("z", dist.Bernoulli(0.5))
    elif kind == "batch_outside_plate":
        pyro.sample("x", dist.Bernoulli(0.5).expand_by([5]), infer=ENUM)
    elif kind == "sequential":
        pyro.sample("a", dist.Bernoulli(0.25), infer={"enumerate": "sequential"})
    elif kind == "diamond":  # b and c depend on a, d on b and c across two plates
        a = pyro.sample("a", dist.Categorical(torch.tensor([0.45, 0.55])), infer=ENUM)
        with pyro.plate("b_axis", 2, dim=-1):
            b = pyro.sample("b", dist.Categorical(torch.tensor([[0.6, 0.4], [0.4, 0.6]])[a]), infer=ENUM)
        with pyro.plate("c_axis", 2, dim=-2):
            c = pyro.sample("c", dist.Categorical(torch.tensor([[0.75, 0.25], [0.55, 0.45]])[a]), infer=ENUM)
        with pyro.plate("b_axis", 2, dim=-1), pyro.plate("c_axis", 2, dim=-2):
            pyro.sample("d", dist.Bernoulli(Vindex(torch.tensor([[0.4, 0.3], [0.3, 0.2]]))[b, c]),
                        obs=torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


def global_sum_over_enumerated_locals(guide):  # the model sums c out, the guide enumerates z_i
    c = None if guide else pyro.sample("c", dist.Bernoulli(0.3), infer=ENUM)
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Bernoulli(0.5), infer=ENUM if guide else {})
        if not guide:
            pyro.sample("y", dist.Normal(z + c, 1.0), obs=torch.zeros(3))


def nested_subsampling(guide):  # c_i summed with x_ij of another scale (two subsampled plates)
    with pyro.plate("outer", 6, subsample_size=3):
        c = pyro.sample("c", dist.Bernoulli(0.3), infer=ENUM) if not guide else None
        with pyro.plate("inner", 5, subsample_size=2):
            if not guide:
                pyro.sample("x", dist.Normal(c, 1.0), obs=torch.zeros(2, 3))


def event_dims(shape, event_dim, guide=False):
    def program():
        loc = pyro.param("loc", torch.zeros(shape)) if guide else torch.zeros(shape)
        pyro.sample("x", dist.Normal(loc, 1.0).to_event(event_dim))
    return program


clash, wrong_size, colliding, batch, sequential, diamond = (partial(rejected, kind) for kind in (
    "clash", "wrong_size", "colliding_dims", "batch_outside_plate", "sequential", "diamond"))


@pytest.mark.parametrize("model, guide, error, match", [
    pytest.param(clash, clash, ValueError, "site 'x' appears twice", id="variable_clash"),
    pytest.param(partial(small, "z_model"), empty, ValueError, "missing latent site 'z'",
                 id="nonempty_model_empty_guide"),
    pytest.param(wrong_size, wrong_size, ValueError, "Shape mismatch inside plate.*site x", id="plate_size"),
    pytest.param(colliding, colliding, ValueError, "collide at dim=", id="dim_allocation"),
    pytest.param(diamond, empty, NotImplementedError, "tree-structured plate nesting", id="diamond"),
    pytest.param(sequential, empty, ValueError, "site 'a'", id="sequential_enum_in_model"),
    pytest.param(event_dims((1, 2), 2), event_dims((2, 1), 2, True), ValueError, "site 'x'",
                 id="shape_mismatch"),
    pytest.param(event_dims((2,), 1), event_dims((2, 1), 2, True), ValueError, "site 'x'",
                 id="dim_mismatch"),
    pytest.param(batch, batch, ValueError, "site 'x'", id="enum_batch_outside_plate"),
    pytest.param(partial(global_sum_over_enumerated_locals, False),
                 partial(global_sum_over_enumerated_locals, True),
                 ValueError, "guide site 'z' is enumerated inside plate 'data'.*sites \\['c'\\] outside",
                 id="model_enum_more_global_than_guide_enum"),
    pytest.param(partial(nested_subsampling, False), partial(nested_subsampling, True), NotImplementedError,
                 "site 'x': enumerated site 'c' has scale 2.0.* but 'x', in the same sum, has scale 5.0",
                 id="enum_multi_scale"),
])
def test_structures_pyro_rejects_are_rejected(model, guide, error, match):
    with pytest.raises(error, match=match):
        VI(model, guide, TraceEnum_ELBO()).step()


P_MARKOV, Q_MARKOV = torch.tensor([[0.2, 0.7], [0.6, 0.35]]), torch.tensor([0.3, 0.8])


@config_enumerate
def second_order_chain(history):  # x_t depends on x_{t-1} and x_{t-2}
    x_prev, x_curr = torch.tensor(0), torch.tensor(0)
    for t in pyro.markov(range(4), history=history):
        x_prev, x_curr = x_curr, pyro.sample(f"x_{t}", dist.Bernoulli(P_MARKOV[x_prev, x_curr])).long()
        pyro.sample(f"y_{t}", dist.Bernoulli(Q_MARKOV[x_curr]), obs=torch.tensor(0.0))


def _second_order_likelihood():
    """p(y_0..3 = 0) of second_order_chain, summed by hand over all 16 paths of x."""
    total = 0.0
    for xs in itertools.product([0, 1], repeat=4):
        weight, x_prev, x_curr = 1.0, 0, 0
        for x in xs:
            p = P_MARKOV[x_prev, x_curr]
            x_prev, x_curr = x_curr, x
            weight *= (p if x else 1 - p) * (1 - Q_MARKOV[x])
        total += float(weight)
    return total


def test_a_second_order_chain_with_history_2_is_exact():
    # test_markov_history's valid case: Pyro accepts it, so a refusal is a failure
    exact = -math.log(_second_order_likelihood())
    assert VI(partial(second_order_chain, 2), empty).loss() == pytest.approx(exact, rel=1e-5)
    theirs = TraceEnum_ELBO(max_plate_nesting=0).loss(partial(second_order_chain, 2), empty)
    assert theirs == pytest.approx(exact, rel=1e-5)


def test_a_second_order_chain_with_history_1_is_refused_as_pyro_refuses_it():
    # once gave a wrong loss (1.981 against the exact 2.152): x_2 read a recycled x_0
    with pytest.raises(ValueError, match="Enumeration dim conflict"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(partial(second_order_chain, 1), empty)
    with pytest.raises(ValueError, match="site 'x_2': enumeration dim conflict"):
        VI(partial(second_order_chain, 1), empty).loss()


def test_enumerated_site_under_another_scale_is_summed_with_the_scale_inside():
    # Pyro refuses it ("Expected all enumerated sample sites to share a common poutine.scale");
    # ours gives it a meaning: -log sum_x p(x) p(y | x)^2
    @config_enumerate
    def model():
        x = pyro.sample("x", dist.Bernoulli(0.3)).long()
        with poutine.scale(scale=2.0):
            pyro.sample("y", dist.Bernoulli(torch.tensor([0.2, 0.8])[x]), obs=torch.tensor(0.0))

    with pytest.raises(ValueError, match="common poutine.scale"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty)
    assert VI(model, empty).loss() == pytest.approx(-math.log(0.7 * 0.8 ** 2 + 0.3 * 0.2 ** 2), rel=1e-6)


# ------------------------------------------------------ gradients (test_enum.py)
def _p(guide, name, value, model_value):
    return pyro.param(name, torch.tensor(value), constraint=unit) if guide else model_value


def bern_bern(guide):  # z depends on y in the model and in the guide
    y = pyro.sample("y", dist.Bernoulli(_p(guide, "q1", 0.43, 0.33)))
    pyro.sample("z", dist.Bernoulli(_p(guide, "q2", 0.27, 0.55) * y + 0.10))


def pyramid(guide):
    p = partial(_p, guide)
    a = pyro.sample("a", dist.Bernoulli(p("qa", 0.33, 0.33)))
    with pyro.plate("b_plate", 3):
        b = pyro.sample("b", dist.Bernoulli(p("qb", 0.51, 0.25 * a + 0.50)))
        with pyro.plate("c_plate", 5):
            pyro.sample("c", dist.Bernoulli(p("qc", 0.37, 0.15 * a + 0.20 * b + 0.32)))


HMM_DATA = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])


def hmm_model(data, first=None):  # first: a global start state "x", marked as first says
    transition = _probs("transition", torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    emission = _probs("emission", torch.tensor([[0.75, 0.25], [0.35, 0.65]]))
    x = 0 if first is None else pyro.sample("x", dist.Categorical(torch.tensor([0.5, 0.5])))
    for t, y in pyro.markov(enumerate(data)):
        x = pyro.sample(f"x_{t}", dist.Categorical(transition[x]), infer=first or {})
        pyro.sample(f"y_{t}", dist.Categorical(emission[x]), obs=y)


@config_enumerate
def hmm_guide(data):  # test_elbo_hmm_in_guide: the chain enumerated in the guide
    transition, x = _probs("guide_transition", torch.tensor([[0.6, 0.4], [0.3, 0.7]])), 0
    for t in pyro.markov(range(len(data))):
        x = pyro.sample(f"x_{t}", dist.Categorical(transition[x]))


def x_guide(name, init, data, infer=None):  # a guide for x alone, sampled or enumerated
    pyro.sample("x", dist.Categorical(_probs(name, torch.tensor(init))), infer=infer or {})


@config_enumerate
def two_plates_model():  # test_elbo_enumerate_plates_1: two unrelated plates
    with pyro.plate("a_axis", 2):
        a = pyro.sample("a", dist.Categorical(_probs("probs_a", torch.tensor([0.45, 0.55]))))
        pyro.sample("b", dist.Categorical(_probs("probs_b", torch.tensor([[0.6, 0.4], [0.4, 0.6]]))[a]),
                    obs=torch.tensor([0, 1]))
    with pyro.plate("c_axis", 3):
        c = pyro.sample("c", dist.Categorical(_probs("probs_c", torch.tensor([0.75, 0.25]))))
        pyro.sample("d", dist.Categorical(_probs("probs_d", torch.tensor([[0.4, 0.6], [0.3, 0.7]]))[c]),
                    obs=torch.tensor([0, 0, 1]))


def plate_2_model(data):  # test_elbo_enumerate_plate_2: y enumerated in the model, in the plate
    x = pyro.sample("x", dist.Categorical(_probs("model_x", torch.tensor([0.4, 0.6]))))
    with pyro.plate("data", len(data)):
        probs_y = _probs("model_y", torch.tensor([[0.75, 0.25], [0.55, 0.45]]))
        y = pyro.sample("y", dist.Categorical(probs_y[x]), infer=ENUM)
        pyro.sample("z", dist.Categorical(_probs("model_z", torch.tensor([[0.3, 0.7], [0.2, 0.8]]))[y]),
                    obs=data)


PLATE_2_DATA = torch.tensor([1, 0, 1])
plate_2_guide, first_guide = partial(x_guide, "guide_x", [0.1, 0.9]), partial(x_guide, "init", [0.75, 0.25])
NO_BASELINE = {"estimators": {"x": Score(baseline=None)}}  # the plain score function, as Pyro's


@pytest.mark.parametrize("model, guide, nesting, args, options", [
    pytest.param(partial(bern_bern, False), config_enumerate(partial(bern_bern, True)), 0, (), {},
                 id="bern_bern_guide_enum"),
    pytest.param(partial(pyramid, False), config_enumerate(partial(pyramid, True)), 2, (), {},
                 id="pyramid_guide_enum"),
    pytest.param(partial(pyramid, False), config_enumerate(partial(pyramid, True), expand=True), 2, (), {},
                 id="pyramid_guide_enum_expanded"),
    pytest.param(hmm_model, hmm_guide, 0, (HMM_DATA,), {}, id="hmm_in_guide"),
    pytest.param(config_enumerate(hmm_model), empty, 0, (HMM_DATA,), {}, id="hmm_in_model"),
    pytest.param(two_plates_model, empty, 1, (), {}, id="two_plates_in_model"),
    pytest.param(poutine.scale(two_plates_model, scale=10.0), empty, 1, (), {}, id="two_plates_scaled"),
    pytest.param(plate_2_model, plate_2_guide, 1, (PLATE_2_DATA,), NO_BASELINE, id="plate_2_sampled_guide"),
    pytest.param(partial(hmm_model, first=ENUM), first_guide, 0, (HMM_DATA,), NO_BASELINE,
                 id="hmm_in_model_sampled_guide"),
    pytest.param(plate_2_model, partial(plate_2_guide, infer=ENUM), 1, (PLATE_2_DATA,), {},
                 id="plate_2_enum_in_both"),
    pytest.param(partial(hmm_model, first=ENUM), partial(first_guide, infer=ENUM), 0, (HMM_DATA,), {},
                 id="hmm_enum_in_both"),
    pytest.param(*enum_in_model(True), 0, (),
                 {"estimators": {"a": Score(baseline=None), "d": Score(baseline=None)}},
                 id="score_site_downstream_of_guide_enum"),
    pytest.param(partial(enum_in_subsampled_plate, False), partial(enum_in_subsampled_plate, True), 1, (), {},
                 id="enum_in_subsampled_plate"),
])
def test_enumeration_gradients_equal_trace_enum_elbos(model, guide, nesting, args, options):
    """d(loss)/d(unconstrained params): ours against TraceEnum_ELBO's on the same draws."""
    vi = VI(model, guide, TraceEnum_ELBO(max_plate_nesting=nesting), **options)
    pyro.set_rng_seed(0)
    ours = vi.differentiable_loss(*args)
    with vi.param_scope():
        pyro.set_rng_seed(0)
        theirs = TraceEnum_ELBO(max_plate_nesting=nesting).differentiable_loss(model, guide, *args)
        store = pyro.get_param_store()
        names = sorted(store.keys())
        leaves = [store._params[name] for name in names]
    assert names
    for name, a, b in zip(names, torch.autograd.grad(ours, leaves), torch.autograd.grad(theirs, leaves)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (name, a, b)

"""Every noise-sharing rule of ``ppl/causal/noise.py`` against an independent oracle:
rejection sampling of explicit Gumbel noise (Categorical), closed forms (location-scale
and inverse-CDF families, Bernoulli's monotone coupling) and quadrature (the factual
world's log density). Tolerances are ``Z`` standard errors of the estimates compared. The
tests taking ``on_backend`` run on torch and on JAX (the rules and the Gumbel sampler are
written once, on the backend's array ops)."""

import math

import numpy as np
import pytest
import torch

import inference
import ppl
import ppl.distributions as dist
from ppl.causal.noise import GumbelGivenArgmax

Z = 5.0  # standard errors: with some 60 comparisons a correct answer fails about once in 10^5 runs


def _gumbel(shape, generator):
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(min=1e-300)
    return -torch.log(-torch.log(u))


def _table(rows, k, seed):
    """``rows`` random categorical distributions over ``k`` categories, none tiny."""
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(rows, k, generator=generator, dtype=torch.float64) + 0.2
    return p / p.sum(-1, keepdim=True)


def _rejection_counterfactual(table, factual_row, observed, cf_row, n, seed):
    """P(argmax(log table[cf_row] + g) = j | argmax(log table[factual_row] + g) = observed),
    with explicit g ~ Gumbel(0, 1)^K, by rejection: (probabilities, their standard errors)."""
    g = _gumbel((n, table.shape[-1]), torch.Generator().manual_seed(seed))
    keep = (table[factual_row].log() + g).argmax(-1) == observed
    cf = (table[cf_row].log() + g[keep]).argmax(-1)
    p = torch.bincount(cf, minlength=table.shape[-1]).double() / keep.sum()
    return p, (p * (1 - p) / keep.sum()).sqrt()


def _draws(logits, chosen, n, seed):
    """``n`` draws of the active backend's GumbelGivenArgmax(logits, chosen), seeded, as a
    float64 torch tensor (JAX draws with a key, torch from its global generator)."""
    backend = ppl.get_backend()
    density = GumbelGivenArgmax(backend.ops.asarray(logits.numpy()), backend.ops.asarray(chosen))
    if backend.name == "jax":
        import jax

        draws = density.sample(jax.random.PRNGKey(seed), (n,))
    else:
        torch.manual_seed(seed)
        draws = density.sample((n,))
    return _as_torch(draws)


def _as_torch(x):
    """A torch or JAX array as a float64 torch tensor."""
    return (x if torch.is_tensor(x) else torch.as_tensor(np.array(x))).double()


@pytest.mark.parametrize("k", [3, 4, 6, 10])
def test_gumbel_given_argmax_draws_the_conditional_noise(k, on_backend):
    # the sampler's draws against explicit Gumbel noise kept where the argmax is k' (the
    # first category, a middle one, the last): mean and mean square of every coordinate
    # (JAX draws in float32: the logits are rounded to float32 for the argmax check)
    logits = _table(1, k, seed=k)[0].log()
    g = _gumbel((400_000, k), torch.Generator().manual_seed(100 + k))
    for chosen in (0, k // 2, k - 1):
        oracle = g[(logits + g).argmax(-1) == chosen]
        draws = _draws(logits, chosen, 200_000, seed=k * 31 + chosen)
        rounded = logits.float().double() if on_backend == "jax" else logits
        assert bool(((rounded + draws).argmax(-1) == chosen).all())
        for fn in (lambda v: v, lambda v: v * v):
            a, b = fn(draws), fn(oracle)
            se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
            assert ((a.mean(0) - b.mean(0)).abs() < Z * se).all(), (chosen, a.mean(0), b.mean(0))


def test_gumbel_given_argmax_keeps_categories_of_probability_zero_finite(on_backend):
    logits = torch.tensor([0.0, -math.inf, 0.0]).log_softmax(-1)
    draws = _draws(logits, 2, 1000, seed=0).float()
    assert torch.isfinite(draws).all()
    assert bool(((logits + draws).argmax(-1) == 2).all())


@pytest.mark.parametrize("k", [3, 5])
def test_gumbel_given_argmax_log_prob_is_the_conditional_density(k, on_backend):
    # p(g | argmax = c) = p(g) 1[argmax = c] / softmax(logits)_c (Bayes); it integrates to one:
    # E_prior[p(g | c) / p(g)] = 1
    logits = torch.randn(k, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    prior = torch.distributions.Gumbel(torch.zeros(k, dtype=torch.float64), 1.0)
    g = _gumbel((200_000, k), torch.Generator().manual_seed(7))
    softmax = logits.softmax(-1)
    ops = ppl.get_backend().ops
    for chosen in range(k):
        density = GumbelGivenArgmax(ops.asarray(logits.numpy()), ops.asarray(chosen))
        log_prob = _as_torch(density.log_prob(ops.asarray(g.numpy())))
        ratio = (log_prob - prior.log_prob(g).sum(-1)).exp()
        inside = (logits + g).argmax(-1) == chosen
        assert torch.allclose(ratio[inside], 1 / softmax[chosen].expand(int(inside.sum())))
        assert bool((ratio[~inside] == 0).all())
        assert abs(float(ratio.mean()) - 1) < Z * float(ratio.std()) / math.sqrt(len(g))


def _categorical_scm(table):
    def model():
        x = ppl.sample("x", dist.Categorical(torch.ones(table.shape[0]) / table.shape[0]))
        return ppl.sample("c", dist.Categorical(table[x]))
    return model


@pytest.mark.parametrize("k,seed", [(3, 0), (4, 1), (7, 2), (10, 3)])
def test_categorical_counterfactual_matches_rejection_sampling_of_explicit_noise(k, seed):
    table = _table(3, k, seed).float()
    model = _categorical_scm(table)
    for observed, (factual, cf) in [(k - 1, (1, 0)), (0, (2, 1)), (k // 2, (0, 2))]:
        answer = inference.counterfactual(model, {"x": torch.tensor(factual), "c": torch.tensor(observed)},
                                          {"x": torch.tensor(cf)}, "c", method="importance",
                                          num_particles=40_000)
        oracle, oracle_se = _rejection_counterfactual(table.double(), factual, observed, cf,
                                                      1_000_000, seed)
        for j in range(k):
            p = answer.probability(j)
            se = math.sqrt(max(p * (1 - p), 1e-4) / answer.effective_sample_size + oracle_se[j] ** 2)
            assert abs(p - float(oracle[j])) < Z * se, (observed, j, p, float(oracle[j]))


def test_the_issue_example_against_rejection_sampling(on_backend):
    # the model written once (x an integer, the table indexed by it on either backend)
    table = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])

    def model():
        x = ppl.sample("x", dist.Categorical(ppl.get_backend().ops.asarray([0.5, 0.5])))
        return ppl.sample("c", dist.Categorical(ppl.get_backend().ops.asarray(table.tolist())[x]))

    answer = inference.counterfactual(model, {"x": 1, "c": 2}, {"x": 0}, "c", method="importance",
                                      num_particles=40_000)
    oracle, _ = _rejection_counterfactual(table.double(), 1, 2, 0, 1_000_000, seed=11)
    # about [0.648, 0.209, 0.143]; the broken sampler gave {0: 0.740, 1: 0.260} and never 2
    assert answer.probability(2) > 0.1
    for j in range(3):
        assert abs(answer.probability(j) - float(oracle[j])) < 0.015  # > 5 standard errors


def test_unobserved_categorical_noise_is_shared_by_gumbel_max(on_backend):
    # c is not observed: its noise keeps the Gumbel prior in every world, so that
    # c_1 = argmax(log table[x_cf] + g) with the same g as c_0; a child y observes c_0
    table = _table(2, 4, seed=5).float()

    def model():
        ops = ppl.get_backend().ops
        x = ppl.sample("x", dist.Bernoulli(0.5))
        c = ppl.sample("c", dist.Categorical(ops.asarray(table.tolist())[ops.to_index(x)]))
        return ppl.sample("y", dist.Normal(1.0 * c, 1.0))

    answer = inference.counterfactual(model, {"x": 1.0, "y": 2.4}, {"x": 0.0}, "c",
                                      method="importance", num_particles=100_000)
    g = _gumbel((1_000_000, 4), torch.Generator().manual_seed(3))
    c1 = (table[1].double().log() + g).argmax(-1)
    c0 = (table[0].double().log() + g).argmax(-1)
    w = torch.distributions.Normal(c1.double(), 1.0).log_prob(torch.tensor(2.4)).exp()
    oracle = float((w * c0).sum() / w.sum())
    oracle_se = math.sqrt(float((w ** 2 * (c0 - oracle) ** 2).sum()) / float(w.sum()) ** 2)
    assert abs(answer.mean - oracle) < Z * math.hypot(answer.stderr, oracle_se)


def test_location_scale_noise_with_a_scale_other_than_one(on_backend):
    # y = 3x + 2 eps: y = 5 at x = 1 fixes eps = 1; under do(x = -1), y = -3 + 2 = -1
    def model():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        return ppl.sample("y", dist.Normal(3 * x, 2.0))

    for family in (dist.Normal, dist.Laplace, dist.Cauchy, dist.Gumbel):
        def scm(family=family):
            x = ppl.sample("x", family(0.0, 1.0))
            return ppl.sample("y", family(3 * x, 2.0))

        answer = inference.counterfactual(scm, {"x": 1.0, "y": 5.0}, {"x": -1.0}, "y")
        assert answer.mean == pytest.approx(-1.0, abs=1e-5), family
    assert inference.counterfactual(model, {"x": 1.0, "y": 5.0}, {"x": -1.0}, "y").mean == \
        pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("family", ["Normal", "Laplace"])
def test_the_factual_log_density_weights_the_parent_by_its_scale(family):
    # u ~ N(0, 1), y ~ F(u, s(u)) with a scale that varies with u, y = 1 observed: the
    # counterfactual world keeps u, so its mean is the posterior mean of u given y = 1,
    # which quadrature gives; the evidence's log density must carry -log s(u)
    Family = getattr(dist, family)

    def scale(u):
        return 0.3 + torch.nn.functional.softplus(2 * u)

    def model():
        u = ppl.sample("u", dist.Normal(0.0, 1.0))
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        return ppl.sample("y", Family(u + x, scale(u)))

    grid = torch.linspace(-8, 8, 20_001, dtype=torch.float64)
    log_post = torch.distributions.Normal(0.0, 1.0).log_prob(grid)
    # y = u + x + s(u) eps with x given as 0 in the evidence
    log_post = log_post + getattr(torch.distributions, family)(grid, scale(grid)).log_prob(
        torch.tensor(1.0, dtype=torch.float64))
    post = (log_post - log_post.max()).exp()
    exact = float((grid * post).sum() / post.sum())
    answer = inference.counterfactual(model, {"x": 0.0, "y": 1.0}, {"x": 2.0}, "u",
                                      method="importance", num_particles=200_000)
    assert abs(answer.mean - exact) < Z * answer.stderr + 1e-4, (answer, exact)


def inverse_cdf_scm():
    z = ppl.sample("z", dist.Bernoulli(0.5))
    ppl.sample("t", dist.Exponential(0.5 + 2.5 * z))
    return ppl.sample("v", dist.Uniform(-1.0 + 2 * z, 1.0 + 6 * z))


def test_inverse_cdf_noise_of_exponential_and_uniform_sites(on_backend):
    # Exponential: t = -log(1 - u) / rate, so t = 2 at rate 3 gives t = 2 * 3 / 0.5 = 12 at
    # rate 0.5; Uniform(low, high): the same quantile in the other world's interval
    answer = inference.counterfactual(inverse_cdf_scm, {"z": 1.0, "t": 2.0, "v": 4.0}, {"z": 0.0}, "t")
    assert answer.mean == pytest.approx(12.0, rel=1e-5)
    # v = 4 in (1, 7) is the quantile 1/2; in (-1, 1) that is 0
    answer = inference.counterfactual(inverse_cdf_scm, {"z": 1.0, "t": 2.0, "v": 4.0}, {"z": 0.0}, "v")
    assert answer.mean == pytest.approx(0.0, abs=1e-5)


def test_unobserved_inverse_cdf_sites_keep_their_prior_in_every_world(on_backend):
    # nothing observed about t or v: in the intervened world they follow do(z = 0)'s
    # distribution (E t = 1 / 0.5 = 2, E v = 0), and their noise is the factual world's:
    # t_1 / t_0 = 3 / 0.5 = 6 in every particle
    answer = inference.counterfactual(inverse_cdf_scm, {"z": 1.0}, {"z": 0.0}, "t", method="importance",
                                      num_particles=50_000)
    assert abs(answer.mean - 2.0) < Z * answer.stderr
    ratio = inference.counterfactual(
        inverse_cdf_scm, {"z": 1.0}, {"z": 0.0},
        lambda tr: ppl.world_value(tr, "t", 1) / ppl.world_value(tr, "t", 0),
        method="importance", num_particles=1000)
    assert ratio.mean == pytest.approx(6.0, rel=1e-4) and ratio.stderr < 1e-4
    v = inference.counterfactual(inverse_cdf_scm, {"z": 1.0}, {"z": 0.0}, "v", method="importance",
                                 num_particles=50_000)
    assert abs(v.mean) < Z * v.stderr


@pytest.mark.parametrize("method", ["exact", "importance"])
def test_bernoulli_noise_is_the_monotone_coupling(method, on_backend):
    # y = 1[u > 1 - p_x]: given y = 1 at x = 1, u > 1 - p_1; under do(x = 0) y = 1 iff
    # u > 1 - p_0, probability p_0 / p_1 when p_0 < p_1; given y = 0 at x = 0, u < 1 - p_0,
    # and y = 1 under do(x = 1) with probability (p_1 - p_0) / (1 - p_0); p = (0.3, 0.6)
    def model():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(0.3 + 0.3 * x))

    up = inference.counterfactual(model, {"x": 1.0, "y": 1.0}, {"x": 0.0}, "y", method=method,
                                  num_particles=40_000)
    down = inference.counterfactual(model, {"x": 0.0, "y": 0.0}, {"x": 1.0}, "y", method=method,
                                    num_particles=40_000)
    for answer, exact in ((up, 0.5), (down, 0.3 / 0.7)):
        tolerance = 1e-6 if method == "exact" else Z * answer.stderr
        assert abs(answer.mean - exact) < tolerance, (answer, exact)


def test_gumbel_given_argmax_with_a_batch_of_evidence():
    # two rows of logits, each with its own observed argmax, drawn three at a time: every
    # draw reproduces its own row's argmax, and the event is the K categories
    logits = _table(2, 5, seed=9).log()
    chosen = torch.tensor([4, 1])
    density = GumbelGivenArgmax(logits, chosen)
    assert density.batch_shape == (2,) and density.event_shape == (5,)
    draws = density.sample((3000,))
    assert draws.shape == (3000, 2, 5)
    assert bool(((logits + draws).argmax(-1) == chosen).all())
    # one row of logits shared by a batch of observations
    shared = GumbelGivenArgmax(logits[0], torch.tensor([0, 2, 4]))
    assert shared.batch_shape == (3,) and shared.event_shape == (5,)
    assert bool(((logits[0] + shared.sample((100,))).argmax(-1) == torch.tensor([0, 2, 4])).all())
    # one observation shared by a batch of logits, and batch dims beyond one
    assert GumbelGivenArgmax(logits, torch.tensor(3)).batch_shape == (2,)
    deep = GumbelGivenArgmax(_table(6, 5, seed=2).log().reshape(2, 3, 5), torch.zeros(2, 3))
    assert deep.batch_shape == (2, 3) and deep.event_shape == (5,)


def test_noise_takes_the_dtype_of_a_float64_model():
    # float64 parameters give float64 noise in every family (float32 noise would cap the
    # answers' precision at 1e-7), and the Gumbel sampler draws in the logits' dtype
    def model():
        z = ppl.sample("z", dist.Bernoulli(torch.tensor(0.5, dtype=torch.float64)))
        ppl.sample("n", dist.Normal(z, torch.tensor(2.0, dtype=torch.float64)))
        ppl.sample("u", dist.Uniform(z - 1, z + 1))
        ppl.sample("e", dist.Exponential(z + 1))
        ppl.sample("c", dist.Categorical(logits=torch.stack([z, 1 - z, z * 0], -1)))

    trace = ppl.trace(ppl.counterfactual_worlds(model, {}, {"z": torch.tensor(1.0, dtype=torch.float64)}))()
    for name in ("z", "n", "u", "e", "c"):
        assert trace.sites[f"{name}__noise"].value.dtype == torch.float64, name
    # drawn from float64 uniforms: 2^24 float32 uniforms would repeat some 1,200 of 2 x 10^5
    # values of the maximum (the chosen index's noise is a function of it alone)
    logits = torch.zeros(3, dtype=torch.float64)
    draws = GumbelGivenArgmax(logits, torch.tensor(1)).sample((200_000,))
    assert draws.dtype == torch.float64
    assert torch.unique(draws[:, 1]).numel() > 199_990


@pytest.mark.parametrize("method", ["exact", "importance"])
def test_evidence_on_a_delta_site_conditions_the_worlds(method, on_backend):
    # y = u + x observed as 2 forces u = x = 1; under do(x = 0), y = u = 1 (evidence on a
    # Delta site was ignored: 0.5)
    def model():
        u = ppl.sample("u", dist.Bernoulli(0.5))
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Delta(u + x))

    answer = inference.counterfactual(model, {"y": 2.0}, {"x": 0.0}, "y", method=method,
                                      num_particles=2000)
    assert answer.mean == pytest.approx(1.0, abs=1e-6)

    def vector():  # the same with (u, x) as one event
        ops = ppl.get_backend().ops
        u = ppl.sample("u", dist.Bernoulli(0.5))
        x = ppl.sample("x", dist.Bernoulli(0.5))
        both = u + x
        pair = ops.stack([ops.broadcast_to(u, both.shape), both], -1)
        return ppl.sample("y", dist.Delta(pair, event_dim=1))

    answer = inference.counterfactual(vector, {"y": ppl.get_backend().ops.asarray([1.0, 2.0])}, {"x": 0.0},
                                      lambda tr: ppl.world_value(tr, "y", 1)[..., 1],
                                      method=method, num_particles=2000)
    assert answer.mean == pytest.approx(1.0, abs=1e-6)

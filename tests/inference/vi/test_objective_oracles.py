"""Oracles for VI's objectives, estimators and weights (inference/vi/objectives.py,
estimators.py, baselines.py, inference/weights.py), where the gradients at discrete sites,
the importance-weighted objectives and the per-element weights had none:

- exact enumeration: for a discrete latent and K particles, the expectation over all 3^K
  K-tuples of the bound (and of the estimator) is a finite sum, differentiated by autograd;
- closed forms: with the guide at the exact posterior every importance weight is p(x);
- the estimator written by hand in torch on the very draws VI made (the guide records them);
- Pyro (RenyiELBO, TraceGraph_ELBO, ReweightedWakeSleep) on the same random draws.

Statistical comparisons average per-call gradients over R calls of a seeded VI and allow four
standard errors of that mean (a false alarm has probability about 6e-5 per coordinate).
"""

import itertools
import math
from functools import partial

import pyro
import pyro.infer
import pytest
import torch
from torch.distributions import transform_to

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, RWS, VI, VIS, Renyi, Score
from inference.vi.baselines import LearnedBaseline, RunningBaseline
from models.conjugate import (normal_normal_guide, normal_normal_log_evidence, normal_normal_model,
                              normal_normal_posterior)
from models.mixture import mixture_guide, mixture_log_likelihood, mixture_model

simplex = dist.constraints.simplex

# ----------------------------------------------- a discrete latent with close components
MEANS = (-1.0, 0.5, 2.0)  # close components: every assignment keeps a fair probability
Y = torch.tensor([-0.7, 0.3, 1.8, 0.9])
DATA = Y.repeat(50)  # 200 elements, each with its own importance weights (plate "data")
GUIDE_LOGITS = torch.tensor([0.3, -0.2, 0.1])


def shared_guide(data, means=MEANS):
    """One q(c) for every element, with free logits: a score-function site."""
    logits = ppl.param("guide_logits", GUIDE_LOGITS)
    with ppl.plate("data", data.shape[0]):
        return ppl.sample("c", dist.Categorical(logits=logits))


def leaves(vi, names):
    """The unconstrained leaf tensors the optimiser steps (what gradients are taken against)."""
    with vi.param_scope():
        store = pyro.get_param_store()
        return [store._params[name] for name in names]


def log_densities(c, data, weights, guide_logits, means=MEANS):
    """log p(c, x) and log q(c) of assignments ``c`` (any leading shape) by hand."""
    log_p = dist.Categorical(weights).log_prob(c) + dist.Normal(torch.tensor(means)[c], 1.0).log_prob(data)
    return log_p, dist.Categorical(logits=guide_logits).log_prob(c)


def exact_expected_gradient(objective, weights_leaf, logits_leaf, data=DATA):
    """The expectation of the estimator's loss gradient (d/d(weights leaf), d/d(logits)),
    summed over every K-tuple of assignments per element, weighted by its probability.

    IWAE and Renyi: the gradient of the exact bound E[(1/(1-a)) log (1/K) sum_k w_k^(1-a)]
    (their estimators are unbiased). VIS and RWS: their model step's exact gradient of
    E[log p_hat] with q held fixed, and the expectation of their self-normalised proposal
    gradient sum_k softmax(power * log w)_k d log q(c_k), power 2 (VIS) or 1 (RWS).
    """
    w_leaf = weights_leaf.detach().clone().requires_grad_()
    phi = logits_leaf.detach().clone().requires_grad_()
    K = objective.num_particles
    tuples = torch.tensor(list(itertools.product(range(3), repeat=K)))[..., None]  # [3^K, K, 1]
    log_p, log_q = log_densities(tuples, data, transform_to(simplex)(w_leaf), phi)  # [3^K, K, N]
    probability = log_q.sum(1).exp()  # of the K-tuple, per element
    if isinstance(objective, (VIS, RWS)):
        log_w = log_p - log_q.detach()
        log_p_hat = torch.logsumexp(log_w, 1) - math.log(K)
        power = 2.0 if isinstance(objective, VIS) else 1.0
        normalised = torch.softmax(power * log_w.detach(), 1)
        (model_grad,) = torch.autograd.grad(-(probability.detach() * log_p_hat).sum(), [w_leaf])
        proposal = (probability.detach()[:, None] * normalised * log_q).sum()
        (guide_grad,) = torch.autograd.grad(-proposal, [phi])
        return torch.cat([model_grad, guide_grad])
    gap = 1.0 - objective.alpha
    bound = (torch.logsumexp(gap * (log_p - log_q), 1) - math.log(K)) / gap
    return torch.cat(torch.autograd.grad(-(probability * bound).sum(), [w_leaf, phi]))


def gradient_draws(vi, names, repeats, *args):
    """``repeats`` gradients of ``vi``'s surrogate loss, one per fresh draw: [repeats, dims]."""
    targets = leaves(vi, names)
    return torch.stack([torch.cat(torch.autograd.grad(vi.differentiable_loss(*args), targets))
                        for _ in range(repeats)])


def assert_mean_within(draws, exact, z=4.0):
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    assert torch.all((mean - exact).abs() < z * stderr), (mean, exact, stderr)


@pytest.mark.parametrize("objective", [IWAE(2), IWAE(3), Renyi(0.5, 2), Renyi(2.0, 3), VIS(3), RWS(3)],
                         ids=["iwae2", "iwae3", "renyi_half", "renyi_2", "vis", "rws"])
def test_score_function_gradients_average_to_the_exact_one(objective):
    """Discrete c, guide logits and model weights: the mean of 400 per-call gradients (each
    a sum over 200 independent elements) against the exact expectation by enumeration."""
    vi = VI(mixture_model, shared_guide, objective, estimators={"c": Score(baseline=None)}, rng_seed=0)
    vi.loss(DATA, MEANS)
    draws = gradient_draws(vi, ["weights", "guide_logits"], 400, DATA, MEANS)
    assert_mean_within(draws, exact_expected_gradient(objective, *leaves(vi, ["weights", "guide_logits"])))


class Recorder:
    """Wraps a guide: keeps the value of its latent site drawn on each run."""

    def __init__(self, guide):
        self.guide, self.draws = guide, []

    def __call__(self, *args):
        value = self.guide(*args)
        self.draws.append(value)
        return value


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_score_function_renyi_equals_pyro_and_the_hand_written_estimator_on_the_same_draws(alpha):
    """Pyro's RenyiELBO on the same draws gives the same loss and model gradient. Its guide
    gradient at a non-reparameterised site is alpha/(1-alpha) sum_k w_bar_k d log q(c_k),
    the gradient of the K -> infinity divergence (zero for IWAE), not of the K-particle
    bound, so the guide's is checked against ours written by hand: d/d(phi) of
    bound + sum_k stop_gradient(bound) log q(c_k), per element."""
    K, x = 3, Y
    guide = Recorder(shared_guide)
    objective = IWAE(K) if alpha == 0 else Renyi(alpha, K)
    vi = VI(mixture_model, guide, objective, estimators={"c": Score(baseline=None)})
    vi.loss(x, MEANS)
    w_leaf, phi = leaves(vi, ["weights", "guide_logits"])
    pyro.set_rng_seed(0)
    surrogate = vi.differentiable_loss(x, MEANS)
    ours = torch.autograd.grad(surrogate, [w_leaf, phi])
    c = guide.draws[-1]

    log_p, log_q = log_densities(c, x, transform_to(simplex)(w_leaf), phi)
    gap = 1.0 - alpha
    bound = (torch.logsumexp(gap * (log_p - log_q), 0) - math.log(K)) / gap
    by_hand = -bound.sum() - (bound.detach() * log_q).sum()
    assert float(surrogate.detach()) == pytest.approx(float(by_hand.detach()), rel=1e-6, abs=1e-5)
    for a, b in zip(ours, torch.autograd.grad(by_hand, [w_leaf, phi])):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)

    with vi.param_scope():
        for leaf in (w_leaf, phi):
            leaf.grad = None
        pyro.set_rng_seed(0)
        renyi = pyro.infer.RenyiELBO(alpha=alpha, num_particles=K, vectorize_particles=True,
                                     max_plate_nesting=1)
        theirs = renyi.loss_and_grads(mixture_model, guide, x, MEANS)
    assert torch.equal(guide.draws[-1], c)  # the same draws
    assert -float(bound.detach().sum()) == pytest.approx(theirs, rel=1e-6, abs=1e-5)
    assert torch.allclose(ours[0], w_leaf.grad, rtol=1e-5, atol=1e-6), (ours[0], w_leaf.grad)


def test_score_function_elbo_equals_trace_graph_elbo_on_the_same_draws():
    """TraceGraph_ELBO keeps no direct gradient of -log q at a non-reparameterised site
    (its zero-mean term sum_k d log q(c_k) / K): ours is Pyro's plus that term, on the
    same draws (per element with K = 3, as Pyro's graph weights each element by its own cost)."""
    K, x = 3, Y
    guide = Recorder(shared_guide)
    vi = VI(mixture_model, guide, ELBO(K), estimators={"c": Score(baseline=None)})
    vi.loss(x, MEANS)
    targets = leaves(vi, ["weights", "guide_logits"])
    pyro.set_rng_seed(0)
    ours = torch.autograd.grad(vi.differentiable_loss(x, MEANS), targets)
    c = guide.draws[-1]
    with vi.param_scope():
        pyro.set_rng_seed(0)
        elbo = pyro.infer.TraceGraph_ELBO(num_particles=K, vectorize_particles=True, max_plate_nesting=1)
        elbo.loss_and_grads(mixture_model, guide, x, MEANS)
    assert torch.equal(guide.draws[-1], c)
    (direct,) = torch.autograd.grad(dist.Categorical(logits=targets[1]).log_prob(c).sum() / K, [targets[1]])
    assert torch.allclose(ours[0], targets[0].grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ours[1], targets[1].grad + direct, rtol=1e-5, atol=1e-6), (ours[1], targets[1].grad)


# -------------------------------------------------------------- Renyi beyond alpha = 0
X5 = torch.tensor([0.8, 1.9, 1.2, 0.4, 1.6])


@pytest.mark.parametrize("alpha", [0.5, 2.0, -1.0])
def test_renyi_loss_and_gradients_equal_pyros_on_the_same_draws(alpha):
    """Reparameterised Normal-Normal (models.conjugate): the bound and the gradient of
    loc and scale equal Pyro's RenyiELBO(alpha) on the same draws."""
    vi = VI(normal_normal_model, normal_normal_guide, Renyi(alpha, 7), independent_plate=None)
    vi.loss(X5)
    targets = leaves(vi, ["loc", "scale"])
    pyro.set_rng_seed(1)
    ours = torch.autograd.grad(vi.differentiable_loss(X5), targets)
    pyro.set_rng_seed(1)
    value = vi.loss(X5)
    with vi.param_scope():
        pyro.set_rng_seed(1)
        renyi = pyro.infer.RenyiELBO(alpha=alpha, num_particles=7, vectorize_particles=True,
                                     max_plate_nesting=1)
        theirs = renyi.loss_and_grads(normal_normal_model, normal_normal_guide, X5)
    assert value == pytest.approx(theirs, rel=1e-6, abs=1e-5)
    for a, leaf in zip(ours, targets):
        assert torch.allclose(a, leaf.grad, rtol=1e-5, atol=1e-6), (a, leaf.grad)


def test_renyi_near_alpha_one_is_the_elbo_plus_the_first_order_term():
    """Within 1e-3 of alpha = 1 the bound is taken by its expansion in g = 1 - alpha,
    mean log w + g/2 var(log w) (plug-in moments over the particles); the exact formula
    (1/g) log mean exp(g log w) adds g^2/6 kappa_3 + g^3/24 kappa_4 + ... (the plug-in
    cumulants). In float64: at |g| = 5e-4 the value minus the ELBO is g/2 var, and the
    exact formula minus the value is g^2/6 kappa_3 up to the g^3 term; at |g| = 2e-3,
    outside the expansion's range, the value is the exact formula itself."""
    ops = ppl.get_backend().ops
    log_q = torch.tensor([[-1.2, -0.3, -2.0], [-0.7, -1.1, -0.4], [-2.5, -0.9, -1.6], [-0.1, -3.0, -0.8]],
                         dtype=torch.float64)  # K = 4 particles, 3 elements of their own
    log_w = torch.tensor([[-4.1, 0.4, 1.0], [0.2, -1.7, 0.3], [1.3, -0.9, -2.2], [0.5, 2.6, 0.1]],
                         dtype=torch.float64)  # skewed, so that kappa_3 is not 0
    log_p = log_w + log_q
    K = 4
    centred = log_w - log_w.mean(0)
    m2, m3, m4 = (centred ** 2).mean(0), (centred ** 3).mean(0), (centred ** 4).mean(0)
    kappa4 = m4 - 3 * m2 ** 2
    for g in (5e-4, -5e-4, 2e-3, -2e-3):
        _, value = Renyi(1.0 - g, K).loss(ops, log_p, log_q, {}, {})
        exact = float(((torch.logsumexp(g * log_w, 0) - math.log(K)) / g).sum())
        if abs(g) < 1e-3:
            elbo = float(log_w.mean(0).sum())
            assert float(value) - elbo == pytest.approx(g / 2 * float(m2.sum()), rel=1e-9)
            third_order = abs(g) ** 3 / 24 * float(kappa4.abs().sum())
            assert abs(exact - float(value) - g ** 2 / 6 * float(m3.sum())) < 2 * third_order + 1e-12
        else:
            assert float(value) == pytest.approx(exact, rel=1e-12)


# -------------------------------------------------------- Score(baseline="learned")
ETA = 0.05  # SGD's step for the baseline


def test_learned_baseline_is_fitted_keeps_the_gradient_unbiased_and_cuts_its_variance():
    """ELBO(2) at the score-function site c (per element), guide and model held at their
    values: an SGD over the baseline's parameter alone. Its loss is mean((s - b)^2) over the
    step's signals s = log w, so b <- (1 - 2 eta) b + 2 eta mean(s): after 100 steps from 0
    (0.9^100 of the start left) b is stationary around E[s] (exact by enumeration) with
    variance eta / (1 - eta) Var(mean s), Var(mean s) = sum_i Var_q(log w_i) / (K N^2).
    Then 200 gradients with that baseline average to the exact ELBO gradient, and their
    variance is below the no-baseline estimator's by more than four standard errors of the
    difference (each variance's standard error from the draws' fourth moment; measured:
    about 12 of them)."""
    K = 2

    def baseline_only(_leaves):
        return torch.optim.SGD(list(vi.baseline_parameters().values()), lr=ETA)

    vi = VI(mixture_model, shared_guide, ELBO(K), baseline_only, estimators={"c": Score("learned")},
            rng_seed=0)
    for _ in range(100):
        vi.step(DATA, MEANS)
    w_leaf, phi = leaves(vi, ["weights", "guide_logits"])
    assert torch.equal(phi, GUIDE_LOGITS)  # held

    values = torch.arange(3)[:, None]
    log_p, log_q = log_densities(values, DATA, transform_to(simplex)(w_leaf), phi)
    q, log_w = log_q.exp(), log_p - log_q  # [3, N]
    with torch.no_grad():
        mean_signal = float((q * log_w).sum(0).mean())
        var_mean_signal = float((q * (log_w - (q * log_w).sum(0)) ** 2).sum(0).sum()) / (K * len(DATA) ** 2)
    baseline = float(vi.params["_baseline.c"])
    assert abs(baseline - mean_signal) < 4 * math.sqrt(ETA / (1 - ETA) * var_mean_signal), (
        baseline, mean_signal)

    with_baseline = gradient_draws(vi, ["guide_logits"], 200, DATA, MEANS)
    plain = VI(mixture_model, shared_guide, ELBO(K), estimators={"c": Score(baseline=None)}, rng_seed=1)
    plain.loss(DATA, MEANS)
    without = gradient_draws(plain, ["guide_logits"], 200, DATA, MEANS)

    exact_elbo = (q * log_w).sum()
    (exact,) = torch.autograd.grad(-exact_elbo, [phi])
    assert_mean_within(with_baseline, exact)

    def variance_and_stderr(draws):
        centred = draws - draws.mean(0)
        var = (centred ** 2).mean(0)
        return var, (((centred ** 4).mean(0) - var ** 2) / len(draws)).sqrt()

    v_with, se_with = variance_and_stderr(with_baseline)
    v_without, se_without = variance_and_stderr(without)
    assert torch.all(v_without - v_with > 4 * (se_with ** 2 + se_without ** 2).sqrt()), (v_with, v_without)


# ------------------------------------------------ VIS and RWS: weights, bound, guide update
X_MIX = torch.tensor([-3.6, 0.4, 4.9, -0.8, 3.1, 1.7])  # models.mixture's means (-4, 0, 4)
MIX_MEANS = (-4.0, 0.0, 4.0)
LOGITS = torch.tensor([[0.5, -0.3, 0.1], [-1.0, 0.2, 0.4], [0.0, 0.7, -0.6],
                       [0.3, 0.3, -0.9], [-0.2, -0.5, 0.8], [1.1, 0.0, -0.4]])  # not the posterior


def exact_posterior_logits(x):
    """log p(c | x_i) for the mixture's uniform initial weights (the weights cancel)."""
    return dist.Normal(torch.tensor(MIX_MEANS), 1.0).log_prob(x[:, None]).log_softmax(-1)


@pytest.mark.parametrize("objective", [IWAE(5), VIS(5), RWS(5)], ids=["iwae", "vis", "rws"])
def test_the_bound_at_the_exact_posterior_is_the_log_evidence(objective):
    """With q the exact posterior every weight p(x, z) / q(z) is p(x), so the bound on any
    draws is log p(x) exactly: for Normal-Normal's global mean (one weight per particle,
    closed-form evidence) and per element for the mixture's assignments (log evidence by
    enumeration, models.mixture.mixture_log_likelihood). Float32 rounding only."""
    loc, scale = normal_normal_posterior(X5)
    vi = VI(normal_normal_model, normal_normal_guide, objective, params={"loc": loc, "scale": scale})
    assert -vi.loss(X5) == pytest.approx(normal_normal_log_evidence(X5), abs=1e-4)
    posterior = {"assignment_logits": exact_posterior_logits(X_MIX)}
    vi = VI(mixture_model, mixture_guide, objective, params=posterior)
    assert -vi.loss(X_MIX) == pytest.approx(mixture_log_likelihood(X_MIX, [1 / 3] * 3), abs=1e-4)


@pytest.mark.parametrize("objective", [VIS(4), RWS(4), RWS(4, wake_phi=0.5)], ids=["vis", "rws", "rws_half"])
def test_vis_and_rws_equal_their_estimators_written_by_hand_on_the_same_draws(objective):
    """The mixture with per-element weights ([K = 4 particles, 6 elements]), its draws
    recorded: the bound is sum_i log (1/K) sum_k w_ik with w = p / q; the surrogate adds
    -wake_phi sum softmax_k(log w) log q (RWS) or -sum softmax_k(2 log w) log q (VIS), the
    softmax over the particle axis, weights held fixed. Its value and the gradients of the
    model's weights and the guide's logits equal VI's."""
    K = objective.num_particles
    guide = Recorder(mixture_guide)
    vi = VI(mixture_model, guide, objective, params={"assignment_logits": LOGITS})
    vi.loss(X_MIX)
    w_leaf, phi = leaves(vi, ["weights", "assignment_logits"])

    def by_hand(c):
        log_p, log_q = log_densities(c, X_MIX, transform_to(simplex)(w_leaf), phi, MIX_MEANS)
        log_w = log_p - log_q.detach()
        bound = (torch.logsumexp(log_w, 0) - math.log(K)).sum()
        power, weight = (2.0, 1.0) if isinstance(objective, VIS) else (1.0, objective.wake_phi)
        return bound.detach(), -bound - weight * (torch.softmax(power * log_w.detach(), 0) * log_q).sum()

    pyro.set_rng_seed(0)
    value = -vi.loss(X_MIX)
    assert value == pytest.approx(float(by_hand(guide.draws[-1])[0]), rel=1e-6, abs=1e-5)
    surrogate = vi.differentiable_loss(X_MIX)
    _, expected = by_hand(guide.draws[-1])
    assert float(surrogate.detach()) == pytest.approx(float(expected.detach()), rel=1e-6, abs=1e-5)
    ours = torch.autograd.grad(surrogate, [w_leaf, phi])
    theirs = torch.autograd.grad(expected, [w_leaf, phi])
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


def test_rws_equals_pyros_reweighted_wake_sleep_on_the_same_draws():
    """Pyro's ReweightedWakeSleep weights whole traces: ours with independent_plate=None,
    on the same draws, has the same wake-theta loss and the same gradients."""
    vi = VI(mixture_model, mixture_guide, RWS(4), params={"assignment_logits": LOGITS},
            independent_plate=None)
    vi.loss(X_MIX)
    targets = leaves(vi, ["weights", "assignment_logits"])
    pyro.set_rng_seed(3)
    ours = torch.autograd.grad(vi.differentiable_loss(X_MIX), targets)
    pyro.set_rng_seed(3)
    value = -vi.loss(X_MIX)
    with vi.param_scope():
        pyro.set_rng_seed(3)
        rws = pyro.infer.ReweightedWakeSleep(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
        wake_theta_loss, _ = rws.loss_and_grads(mixture_model, mixture_guide, X_MIX)
    assert -value == pytest.approx(wake_theta_loss, rel=1e-6, abs=1e-5)
    for a, leaf in zip(ours, targets):
        assert torch.allclose(a, leaf.grad, rtol=1e-5, atol=1e-6), (a, leaf.grad)


def expanded_normal_model(x):
    """models.conjugate's Normal-Normal with the observations' distribution expanded over the
    plate: unconditioned, ppl's plate would draw one x for all (it skips the expand when the
    observed value spans the plate)."""
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(mu, 1.0).expand([len(x)]), obs=x)


def amortised_guide(x):
    """q(mu | x) = N(a * mean(x), 1): reads the observations it is given."""
    return ppl.sample("mu", dist.Normal(ppl.param("a", torch.tensor(0.4)) * x.mean(), 1.0))


def test_rws_sleep_inputs_give_an_amortised_guide_the_dreamed_observations():
    """RWS(1, wake_phi=0, sleep=1, sleep_inputs): the surrogate is -log p_hat(x) (q held
    fixed) plus the sleep loss -log q(mu' | x') on (mu', x') drawn from the model, with the
    guide called on sleep_inputs' arguments (the dreamed x', not the data). Recomputed by
    hand from the recorded draws: the value and the gradient in a."""
    dreams = []

    def sleep_inputs(dreamed, args, kwargs):
        dreams.append(dreamed)
        return (dreamed["x"],), kwargs

    guide = Recorder(amortised_guide)
    vi = VI(expanded_normal_model, guide, RWS(1, wake_phi=0.0, sleep=1.0, sleep_inputs=sleep_inputs),
            rng_seed=0)
    vi.loss(X5)
    dreams.clear()
    surrogate = vi.differentiable_loss(X5)
    (a_leaf,) = leaves(vi, ["a"])
    mu_wake, mu_dream = guide.draws[-2:]
    assert len(dreams) == 1 and set(dreams[0]) == {"x"}
    x_dream = dreams[0]["x"]
    assert x_dream.shape == X5.shape and not torch.equal(x_dream, X5)
    log_p = dist.Normal(0.0, 1.0).log_prob(mu_wake) + dist.Normal(mu_wake, 1.0).log_prob(X5).sum()
    wake = -(log_p - dist.Normal(a_leaf * X5.mean(), 1.0).log_prob(mu_wake)).detach()
    by_hand = wake - dist.Normal(a_leaf * x_dream.mean(), 1.0).log_prob(mu_dream)
    assert float(surrogate.detach()) == pytest.approx(float(by_hand.detach()), rel=1e-6)
    assert torch.allclose(*(torch.autograd.grad(loss, [a_leaf])[0] for loss in (surrogate, by_hand)))


# ------------------------------------------- a site outside the plate of per-element weights
G_OBS = torch.tensor(1.3)


def global_and_local_model(data):
    """An observed global site (outside plate "data", reading no latent) before the mixture."""
    ppl.sample("g", dist.Normal(0.0, 1.0), obs=G_OBS)
    return mixture_model(data)


@pytest.mark.parametrize("vectorize", [True, False], ids=["vectorised", "one_by_one"])
def test_a_site_outside_the_per_element_plate_is_counted_once(vectorize):
    """IWAE(2) with weights per element of "data": sum_i log (1/2) sum_k w_ik, with log p(g)
    added once (not once per particle, not once per element), recomputed by hand from the
    recorded draws."""
    guide = Recorder(mixture_guide)
    vi = VI(global_and_local_model, guide, IWAE(2), params={"assignment_logits": LOGITS},
            vectorize_particles=vectorize)
    vi.loss(X_MIX)
    pyro.set_rng_seed(0)
    value = -vi.loss(X_MIX)
    c = guide.draws[-1] if vectorize else torch.stack(guide.draws[-2:])
    assert c.shape == (2, len(X_MIX))
    log_p, log_q = log_densities(c, X_MIX, torch.ones(3) / 3, LOGITS, MIX_MEANS)
    expected = (torch.logsumexp(log_p - log_q, 0) - math.log(2)).sum() + dist.Normal(0.0, 1.0).log_prob(G_OBS)
    assert value == pytest.approx(float(expected), rel=1e-6, abs=1e-5)


ZEROS_2x3, G_2 = torch.zeros(2, 3), torch.tensor([[0.4], [-1.1]])


def two_plate_model():
    """z in plates "a" and "b" (both kept: "a" holds every latent, "b" every site), and an
    observed g in "b" alone, outside "a"."""
    with ppl.plate("a", 3, dim=-1), ppl.plate("b", 2, dim=-2):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=ZEROS_2x3)
    with ppl.plate("b", 2, dim=-2):
        ppl.sample("g", dist.Normal(0.0, 1.0), obs=G_2)


def two_plate_posterior():  # z | x = 0 is N(0, 1/2): every weight is p(x)
    with ppl.plate("a", 3, dim=-1), ppl.plate("b", 2, dim=-2):
        ppl.sample("z", dist.Normal(0.0, 0.5 ** 0.5))


def test_a_site_in_one_kept_plate_and_outside_another_is_counted_once():
    """Weights per element of both "a" and "b" ([K, 2, 3]); g, outside "a", is summed over
    its own elements of "b" and counted once. At the exact posterior IWAE's bound is
    log p(x) = sum log N(x; 0, 2) + sum log N(g; 0, 1). Float32 rounding only."""
    vi = VI(two_plate_model, two_plate_posterior, IWAE(3))
    expected = (dist.Normal(0.0, 2.0 ** 0.5).log_prob(ZEROS_2x3).sum()
                + dist.Normal(0.0, 1.0).log_prob(G_2).sum())
    assert -vi.loss() == pytest.approx(float(expected), abs=1e-4)
    assert vi._keep == (("b", -2), ("a", -1))  # the per-element path was taken


# ------------------------------------- guide enumeration of sites that depend on each other
P_A, P_B = torch.tensor([0.3, 0.7]), torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
P_C, C_MEANS = torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]]), torch.tensor([-1.0, 1.5])
Y_CHAIN = torch.tensor([0.4, 1.1, -0.3])
ENUM = {"enumerate": "parallel"}


A_SHIFTS = torch.tensor([0.0, 0.8])


def chain_model(y, reads_a=False):  # a -> b -> c, the observations read c (and a)
    a = ppl.sample("a", dist.Categorical(P_A))
    b = ppl.sample("b", dist.Categorical(P_B[a]))
    c = ppl.sample("c", dist.Categorical(P_C[b]))
    with ppl.plate("data", len(y)):
        ppl.sample("y", dist.Normal(C_MEANS[c] + (A_SHIFTS[a] if reads_a else 0.0), 1.0), obs=y)


def chain_guide(y):  # every site enumerated, each one's probabilities read the one before
    qa = ppl.param("qa", torch.tensor([0.6, 0.4]), constraint=simplex)
    qb = ppl.param("qb", torch.tensor([[0.2, 0.5, 0.3], [0.7, 0.1, 0.2]]), constraint=simplex)
    qc = ppl.param("qc", torch.tensor([[0.4, 0.6], [0.3, 0.7], [0.9, 0.1]]), constraint=simplex)
    a = ppl.sample("a", dist.Categorical(qa), infer=ENUM)
    b = ppl.sample("b", dist.Categorical(qb[a]), infer=ENUM)
    ppl.sample("c", dist.Categorical(qc[b]), infer=ENUM)


@pytest.mark.parametrize("reads_a", [False, True], ids=["reads_c", "reads_a_and_c"])
def test_dependent_enumerated_guide_sites_give_the_exact_elbo_and_gradient(reads_a):
    """sum over (a, b, c) of q(a) q(b | a) q(c | b) [log p(a, b, c, y) - log q(a, b, c)], by
    hand: when the observations' log density varies with c alone, its weight q(c | b) must
    bring in b, and q(b | a) then a (two rounds of WeightLayout's closure); when it varies
    with a and c, b (between them in the guide's order) must be brought in all the same."""
    vi = VI(partial(chain_model, reads_a=reads_a), chain_guide, ELBO())
    loss = vi.differentiable_loss(Y_CHAIN)
    names = ["qa", "qb", "qc"]
    targets = leaves(vi, names)
    qa, qb, qc = (transform_to(simplex)(leaf) for leaf in targets)
    exact = 0.0
    for a, b, c in itertools.product(range(2), range(3), range(2)):
        log_q = qa[a].log() + qb[a, b].log() + qc[b, c].log()
        log_p = (P_A[a].log() + P_B[a, b].log() + P_C[b, c].log()
                 + dist.Normal(C_MEANS[c] + A_SHIFTS[a] * reads_a, 1.0).log_prob(Y_CHAIN).sum())
        exact = exact + log_q.exp() * (log_p - log_q)
    assert float(loss.detach()) == pytest.approx(-float(exact.detach()), rel=1e-6)
    assert -vi.loss(Y_CHAIN) == pytest.approx(float(exact.detach()), rel=1e-6)
    for name, a, b in zip(names, torch.autograd.grad(loss, targets), torch.autograd.grad(-exact, targets)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (name, a, b)



# ----------------------------------------- the objectives as functions of fixed log-weights
# K = 2 particles (rows) by N = 3 elements (columns) with their own weights, in float64: each
# objective's (surrogate, value) against its definition written out in torch, the surrogate
# compared through its gradients (what the optimiser follows). K = 2 is the smallest K with a
# mean over particles, and K != N tells the particle axis from the element axis.
LOG_P = torch.tensor([[-2.1, 0.3, -0.8], [-0.4, -1.7, 0.9]], dtype=torch.float64)
LOG_Q = torch.tensor([[-0.6, -1.2, -0.2], [-1.5, -0.1, -0.9]], dtype=torch.float64)
SITE_LOG_Q = torch.tensor([[-0.3, -1.1, -0.7], [-0.9, -0.5, -1.4]], dtype=torch.float64)  # a score site's
LEARNED_START = -0.7  # the learned baseline's parameter (not 0, so that b * log q counts)


def objective_by_hand(objective, log_p, log_q, site_log_q, baseline):
    """(surrogate, value). ELBO: mean_k log w; Renyi: (1/g) log mean_k w^g, g = 1 - alpha
    (within 1e-3 of alpha = 1, mean_k log w + g/2 var_k log w per element);
    with a score-function site, less the sum over it of (signal - b) log q with the signal
    held fixed (log w averaged over particles for the ELBO, the bound summed over them for
    Renyi), b the running baseline's first value (the mean signal) or the learned one's
    parameter, plus that parameter's least-squares loss mean((signal - b)^2). VIS and RWS:
    the log mean weight with q held fixed, less sum softmax_k(power log w) log q (power 2 for
    VIS; 1 for RWS, times wake_phi)."""
    K = log_p.shape[0]
    if isinstance(objective, (VIS, RWS)):
        log_w = log_p - log_q.detach()
        value = (torch.logsumexp(log_w, 0) - math.log(K)).sum()
        power, weight = (2.0, 1.0) if isinstance(objective, VIS) else (1.0, objective.wake_phi)
        return -value - weight * (torch.softmax(power * log_w.detach(), 0) * log_q).sum(), value
    if isinstance(objective, ELBO):
        bound = (log_p - log_q).mean(0)
        signal, reduce_particles = (log_p - log_q).detach(), lambda x: x.mean(0)
    else:
        g, log_w = 1.0 - objective.alpha, log_p - log_q
        if abs(g) < 1e-3:  # its expansion to first order in g, per element (checked above)
            bound = log_w.mean(0) + g / 2 * ((log_w - log_w.mean(0)) ** 2).mean(0)
        else:
            bound = (torch.logsumexp(g * log_w, 0) - math.log(K)) / g
        signal, reduce_particles = bound.detach(), lambda x: x.sum(0)
    value = bound.sum()
    if site_log_q is None:
        return -value, value
    b, fitting = 0.0, 0.0
    if isinstance(baseline, RunningBaseline):
        b = signal.mean()
    elif isinstance(baseline, LearnedBaseline):
        b, fitting = baseline.param.detach(), ((signal - baseline.param) ** 2).mean()
    return -value - reduce_particles((signal - b) * site_log_q).sum() + fitting, value


CASES = {"elbo": ELBO(2), "iwae": IWAE(2), "renyi_half": Renyi(0.5, 2), "renyi_minus_1": Renyi(-1.0, 2),
         "renyi_near_one": Renyi(1.0 - 5e-4, 2)}
CASES = {**{f"{name}-{b}": (objective, b) for name, objective in CASES.items()
            for b in (None, "running", "learned")},
         "vis": (VIS(2), None), "rws": (RWS(2), None), "rws_half": (RWS(2, wake_phi=0.5), None),
         "rws_sleep_only": (RWS(2, wake_phi=0.0, sleep=1.0), None)}


@pytest.mark.parametrize("objective, baseline", CASES.values(), ids=CASES.keys())
def test_each_objective_is_its_definition_on_fixed_log_weights(objective, baseline):
    """The value, the surrogate, and its gradients in log p, log q, a score-function site's
    log q (the ELBO and Renyi) and the learned baseline's parameter equal the definition's,
    to float64 rounding."""
    ops = ppl.get_backend().ops
    log_p, log_q, site = (x.clone().requires_grad_() for x in (LOG_P, LOG_Q, SITE_LOG_Q))
    targets, score_log_q, baselines = [log_p, log_q], {}, {}
    if not objective.detached_samples:
        targets.append(site)
        score_log_q["c"] = site
        if baseline == "running":  # its first step: the state is NaN, the baseline the signal's mean
            baselines["c"] = RunningBaseline(ops, 0.9, torch.tensor(float("nan"), dtype=LOG_P.dtype))
        elif baseline == "learned":
            baselines["c"] = LearnedBaseline(ops, torch.tensor(LEARNED_START, dtype=LOG_P.dtype,
                                                               requires_grad=True))
            targets.append(baselines["c"].param)
    surrogate, value = objective.loss(ops, log_p, log_q, score_log_q, baselines)
    expected, expected_value = objective_by_hand(objective, log_p, log_q, score_log_q.get("c"),
                                                 baselines.get("c"))
    assert float(value.detach()) == pytest.approx(float(expected_value.detach()), rel=1e-12)
    assert float(surrogate.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    for ours, theirs in zip(*(torch.autograd.grad(loss, targets, allow_unused=True, materialize_grads=True)
                              for loss in (surrogate, expected))):
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-14), (ours, theirs)


# ------------------------------ a score-function site downstream of an enumerated one, per element
X3 = torch.tensor([0.3, 1.6, -0.4])


def plated_enum_then_score(guide_side):
    """In plate "data": a enumerated in the guide, d drawn by the score function given a."""
    p = pyro.param("q" if guide_side else "p", torch.tensor(0.35 if guide_side else 0.6),
                   constraint=dist.constraints.unit_interval)
    with pyro.plate("data", len(X3)):
        a = pyro.sample("a", dist.Bernoulli(p), infer=ENUM if guide_side else {})
        d = pyro.sample("d", dist.Bernoulli(p * (0.5 + a) / 1.5))
        if not guide_side:
            pyro.sample("x", dist.Normal(a + 2.0 * d, 1.0), obs=X3)


def test_a_score_site_downstream_of_enumeration_with_per_element_weights_equals_trace_enum_elbo():
    """ELBO(2) with weights per element of "data" (K > 1): the loss and the gradients of the
    model's and the guide's parameters equal Pyro's TraceEnum_ELBO with 2 vectorised
    particles on the same draws (the ELBO is linear in log w: per-element weighting does
    not change it, and d's Dice terms are taken per element)."""
    model, guide = partial(plated_enum_then_score, False), partial(plated_enum_then_score, True)
    vi = VI(model, guide, ELBO(2), estimators={"d": Score(baseline=None)})
    vi.loss()
    targets = leaves(vi, ["p", "q"])
    pyro.set_rng_seed(0)
    ours = vi.differentiable_loss()
    with vi.param_scope():
        pyro.set_rng_seed(0)
        elbo = pyro.infer.TraceEnum_ELBO(num_particles=2, vectorize_particles=True, max_plate_nesting=1)
        theirs = elbo.differentiable_loss(model, guide)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-6)
    for a, b in zip(torch.autograd.grad(ours, targets), torch.autograd.grad(theirs, targets)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a, b)

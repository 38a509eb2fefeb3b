"""ELBO gradients against closed forms, enumeration against exact sums, parity with Pyro."""

import math

import pyro
import pyro.infer
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Score

X = torch.tensor([0.8, 1.9, 1.2, 0.4, 1.6])


def model(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def guide(x):
    loc = ppl.param("loc", torch.tensor(0.3))
    log_scale = ppl.param("log_scale", torch.tensor(-0.5))
    ppl.sample("mu", dist.Normal(loc, log_scale.exp()))


def exact_elbo_gradient(x, m, s):
    """d ELBO / d(m, log s) for mu ~ N(0,1), x_i ~ N(mu,1), q = N(m, s)."""
    n = len(x)
    d_m = float(x.sum()) - (n + 1) * m
    d_s = -(n + 1) * s + 1.0 / s
    return d_m, d_s * s


def gradient_estimates(estimator, num_particles, repeats):
    vi = VI(model, guide, ELBO(num_particles), estimators={"mu": estimator})
    grads = []
    for _ in range(repeats):
        loss = vi.differentiable_loss(X)
        with vi.param_scope():
            loc, log_scale = pyro.param("loc"), pyro.param("log_scale")
        g_loc, g_log_scale = torch.autograd.grad(loss, [loc, log_scale])
        grads.append(torch.stack([-g_loc, -g_log_scale]))  # loss = -ELBO
    return torch.stack(grads)


@pytest.mark.parametrize("estimator,num_particles,repeats", [
    ("reparam", 100, 200),
    ("score", 1000, 200),
])
def test_elbo_gradient_matches_closed_form(estimator, num_particles, repeats):
    grads = gradient_estimates(estimator, num_particles, repeats)
    exact = torch.tensor(exact_elbo_gradient(X, 0.3, math.exp(-0.5)))
    mean = grads.mean(0)
    stderr = grads.std(0) / math.sqrt(repeats)
    # four standard errors: a false alarm has probability about 6e-5 per coordinate
    assert torch.all((mean - exact).abs() < 4 * stderr), (mean, exact, stderr)


def test_score_baseline_reduces_variance():
    with_baseline = gradient_estimates(Score(baseline="running"), 20, 300)
    pyro.clear_param_store()
    no_baseline = gradient_estimates(Score(baseline=None), 20, 300)
    # variance ratio of 300 draws: an F test at the 1e-4 level needs a ratio below ~0.6
    ratio = with_baseline[20:].var(0)[0] / no_baseline[20:].var(0)[0]
    assert ratio < 0.6, ratio


# ------------------------------------------------------------------ enumeration
MEANS = torch.tensor([-2.0, 0.5, 3.0])
PRIOR = torch.tensor([0.2, 0.5, 0.3])
Y = torch.tensor([0.1, 2.7, -1.5, 0.9])


def mixture_model(y):
    with ppl.plate("data", len(y)):
        c = ppl.sample("c", dist.Categorical(PRIOR))
        ppl.sample("y", dist.Normal(MEANS[c], 1.0), obs=y)


def mixture_guide(y):
    logits = ppl.param("logits", torch.linspace(-1, 1, 12).reshape(4, 3))
    with ppl.plate("data", len(y)):
        ppl.sample("c", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})


def exact_mixture_elbo(logits):
    log_q = torch.log_softmax(logits, -1)  # [N, 3]
    log_p = PRIOR.log()[None, :] + torch.distributions.Normal(MEANS[None, :], 1.0).log_prob(Y[:, None])
    return (log_q.exp() * (log_p - log_q)).sum()


def test_enumerated_elbo_equals_exact_expectation_and_gradient():
    vi = VI(mixture_model, mixture_guide, ELBO())
    loss = vi.differentiable_loss(Y)
    with vi.param_scope():
        logits = pyro.param("logits")
    exact = exact_mixture_elbo(logits)
    assert torch.allclose(-loss, exact, atol=1e-5)
    (ours,) = torch.autograd.grad(loss, [logits])
    (expected,) = torch.autograd.grad(-exact_mixture_elbo(logits), [logits])
    assert torch.allclose(ours, expected, atol=1e-5)


def test_enumeration_with_particles_and_reparameterised_site():
    """A reparameterised global site beside an enumerated local one: the enumerated
    sum is exact per particle, so the loss is an unbiased ELBO estimate."""

    def model2(y):
        shift = ppl.sample("shift", dist.Normal(0.0, 1.0))
        with ppl.plate("data", len(y)):
            c = ppl.sample("c", dist.Categorical(PRIOR))
            ppl.sample("y", dist.Normal(MEANS[c] + shift, 1.0), obs=y)

    def guide2(y):
        mixture_guide(y)
        ppl.sample("shift", dist.Normal(0.0, 0.1))

    vi = VI(model2, guide2, ELBO(num_particles=2000), independent_plate=None)
    value = -vi.loss(Y)
    # exact: shift ~ N(0, 0.1) integrated numerically on a grid
    grid = torch.linspace(-0.6, 0.6, 2001)
    q_shift = torch.distributions.Normal(0.0, 0.1)
    logits = vi.params["logits"]
    log_q = torch.log_softmax(logits, -1)
    shifted = torch.distributions.Normal(MEANS[None, None, :] + grid[:, None, None], 1.0)
    log_lik = shifted.log_prob(Y[None, :, None])
    per_shift = (log_q.exp() * (PRIOR.log() + log_lik - log_q)).sum((-1, -2))
    per_shift = per_shift + torch.distributions.Normal(0.0, 1.0).log_prob(grid) - q_shift.log_prob(grid)
    weights = q_shift.log_prob(grid).exp() * (grid[1] - grid[0])
    exact = float((weights * per_shift).sum() / weights.sum())
    assert abs(value - exact) < 0.05  # MC error: sd of per_shift ~ 0.5, 2000 particles -> se ~ 0.01


# ------------------------------------------------------------- parity with Pyro
def test_elbo_and_iwae_losses_equal_pyro_on_same_draws():
    vi = VI(model, guide, ELBO())
    vi.loss(X)  # set-up
    pyro.set_rng_seed(3)
    ours = vi.loss(X)
    pyro.set_rng_seed(3)
    theirs = pyro.infer.Trace_ELBO().loss(model, guide, X)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-5)

    iwae = VI(model, guide, IWAE(17), independent_plate=None, max_plate_nesting=1)
    iwae.loss(X)
    pyro.set_rng_seed(4)
    ours = iwae.loss(X)
    pyro.set_rng_seed(4)
    renyi = pyro.infer.RenyiELBO(alpha=0, num_particles=17, vectorize_particles=True,
                                 max_plate_nesting=1)
    theirs = renyi.loss(model, guide, X)
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-5)


def test_elbo_gradient_equals_pyro_on_same_draws():
    vi = VI(model, guide, ELBO())
    vi.loss(X)
    pyro.set_rng_seed(5)
    with vi.param_scope():  # Pyro's Trace_ELBO reads the same parameters
        loc = pyro.param("loc")
        ours = torch.autograd.grad(vi.differentiable_loss(X), [loc])[0]
        pyro.set_rng_seed(5)
        theirs_loss = pyro.infer.Trace_ELBO().differentiable_loss(model, guide, X)
        theirs = torch.autograd.grad(theirs_loss, [loc])[0]
    assert torch.allclose(ours, theirs, atol=1e-5)


# ------------------------------------- enumeration in the guide and in the model
ENUM = {"enumerate": "parallel"}
DATA_Z = torch.tensor([1, 0, 1])
P_X, P_Y, P_Z = torch.tensor([0.4, 0.6]), torch.tensor([[0.75, 0.25], [0.55, 0.45]]), torch.tensor(
    [[0.3, 0.7], [0.2, 0.8]])


def x_y_model(z):  # x global, enumerated by the guide; y local, summed out by the model
    x = ppl.sample("x", dist.Categorical(P_X))
    with ppl.plate("data", len(z)):
        y = ppl.sample("y", dist.Categorical(P_Y[x]), infer=ENUM)
        ppl.sample("z", dist.Categorical(P_Z[y]), obs=z)


def x_guide(z):
    probs = ppl.param("probs", torch.tensor([0.1, 0.9]), constraint=dist.constraints.simplex)
    ppl.sample("x", dist.Categorical(probs), infer=ENUM)


def test_enumeration_in_guide_and_model_is_the_exact_elbo_with_its_gradient():
    vi = VI(x_y_model, x_guide, ELBO(num_particles=3))
    loss = vi.differentiable_loss(DATA_Z)
    with vi.param_scope():
        leaf = pyro.get_param_store()._params["probs"]
        q = pyro.param("probs")
    # sum_x q(x) [log p(x) + sum_i log sum_y p(y | x) p(z_i | y) - log q(x)]
    log_lik = (P_Y @ P_Z[:, DATA_Z]).log().sum(-1)
    exact = (q * (P_X.log() + log_lik - q.log())).sum()
    assert -vi.loss(DATA_Z) == pytest.approx(exact.item(), abs=1e-5)
    (ours,) = torch.autograd.grad(loss, [leaf])
    (expected,) = torch.autograd.grad(-exact, [leaf])
    assert torch.allclose(ours, expected, atol=1e-5)


def b_d_model():
    b = ppl.sample("b", dist.Bernoulli(0.25))
    d = ppl.sample("d", dist.Bernoulli(0.25 + b / 2))
    ppl.sample("g", dist.Bernoulli(0.25 + d / 2), obs=torch.tensor(0.0))


def b_d_guide():  # d is drawn once per enumerated value of b, by the score function
    q = ppl.param("q", torch.tensor(0.4), constraint=dist.constraints.unit_interval)
    b = ppl.sample("b", dist.Bernoulli(q), infer=ENUM)
    ppl.sample("d", dist.Bernoulli(q + b / 2))


def test_score_site_downstream_of_an_enumerated_site_has_an_unbiased_gradient():
    def exact_elbo(q):
        total = 0.0
        for b in (0.0, 1.0):
            for d in (0.0, 1.0):
                log_q = dist.Bernoulli(q).log_prob(torch.tensor(b)) + dist.Bernoulli(q + b / 2).log_prob(
                    torch.tensor(d))
                log_p = (dist.Bernoulli(0.25).log_prob(torch.tensor(b))
                         + dist.Bernoulli(0.25 + b / 2).log_prob(torch.tensor(d))
                         + dist.Bernoulli(0.25 + d / 2).log_prob(torch.tensor(0.0)))
                total = total + log_q.exp() * (log_p - log_q)
        return total

    vi = VI(b_d_model, b_d_guide, ELBO(num_particles=2000), rng_seed=0)
    grads = []
    for _ in range(20):
        loss = vi.differentiable_loss()
        with vi.param_scope():
            leaf = pyro.get_param_store()._params["q"]
        grads.append(-torch.autograd.grad(loss, [leaf])[0])
    with vi.param_scope():
        leaf = pyro.get_param_store()._params["q"]
        (exact,) = torch.autograd.grad(exact_elbo(pyro.param("q")), [leaf])
    grads = torch.stack(grads)
    stderr = grads.std() / math.sqrt(len(grads))
    # four standard errors; before the enumerated weights were held fixed in the score
    # term, the mean sat about 0.1 above the exact 0.77 (some 30 standard errors here)
    assert abs(grads.mean() - exact) < 4 * stderr, (grads.mean(), exact, stderr)

"""TRICE against exact enumeration on the 64-rationale toy (``models/rationales.py``): its
gradient is unbiased at stationarity, the control variate's variance reduction grows with
the acceptance rate, and training reaches exact gradient ascent's log likelihood within a
stated bound; plus its checkpoints and the models and arguments it refuses by name."""

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import SGD, TRICE, Adam
from models.rationales import (ANSWERS, RATIONALES, initial_logits, mean_log_likelihood,
                               posterior_rationales, rationale_model, shapes, toy_data)

NAMES = ("first", "second", "third")


def _hinted(x, y, batch_size=None):
    # an independence proposal that knows the answer: z3 completes the sum with probability
    # 0.7; z1 leans to 0, so that q differs between right rationales (its ratio matters)
    with ppl.plate("data", len(x), subsample_size=batch_size) as index:
        z1 = ppl.sample("z1", dist.Categorical(torch.tensor([0.7, 0.1, 0.1, 0.1])))
        z2 = ppl.sample("z2", dist.Categorical(torch.full((4,), 0.25)))
        right = (y[index] - z1 - z2) % 4
        probs = 0.1 + 0.6 * torch.nn.functional.one_hot(right, 4).float()
        ppl.sample("z3", dist.Categorical(probs))


def _estimates(params, x, y, repeats, seed, **options):
    """``repeats`` gradient estimates at stationarity: each from a memory drawn from the exact
    posterior, one step of SGD(lr=1) from ``params`` (its move is the estimate)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(repeats):
        trice = TRICE(rationale_model, SGD(1.0), rng_seed=seed * 1000 + r,
                      params={n: torch.tensor(v, dtype=torch.float32) for n, v in params.items()}, **options)
        z = posterior_rationales(params, x, y, rng)
        trice.memory = ({f"z{k + 1}": torch.as_tensor(z[:, k]) for k in range(3)},
                        torch.ones(len(x), dtype=torch.bool))
        trice.step(x, y)
        moved = trice.params
        out.append(np.concatenate([(moved[n].numpy() - params[n]).ravel() for n in NAMES]))
    return np.array(out)


def _exact_gradient(params, x, y):
    """The gradient of (1/n) sum_i log p(y_i | x_i), by enumerating the 64 rationales."""
    theta = {n: torch.tensor(v, requires_grad=True) for n, v in params.items()}
    _exact_mean_log_likelihood(theta, y).backward()
    return np.concatenate([theta[n].grad.numpy().ravel() for n in NAMES])


def _exact_mean_log_likelihood(theta, y):
    a, b, c = torch.tensor(RATIONALES).T
    first, second, third = (torch.log_softmax(theta[n], -1) for n in NAMES)
    log_p = first[:, a] + second[:, a, b] + third[:, a, b, c]
    wrong = torch.tensor(ANSWERS)[None, :] != y[:, None]
    return torch.logsumexp(log_p.masked_fill(wrong, -float("inf")), 1).mean()


@pytest.mark.parametrize("options", [{}, {"num_gradient_terms": 6}, {"proposal": _hinted}])
def test_the_gradient_is_unbiased_at_stationarity(options):
    # 400 estimates, each from a memory drawn from the exact posterior: their mean along the
    # exact gradient and along five random directions lies within 4 standard errors of the
    # exact gradient's (by coordinate, rare prefixes are never visited in 400 draws: their
    # zero spread would make a z-score meaningless)
    x, y = toy_data()
    params = initial_logits(len(x), scale=1.0, seed=3)
    estimates = _estimates(params, x, y, 400, seed=5, **options)
    exact = _exact_gradient(params, x, y)
    rng = np.random.default_rng(0)
    for direction in [exact / np.linalg.norm(exact)] + [rng.normal(size=exact.shape) for _ in range(5)]:
        projected = estimates @ direction
        se = projected.std(ddof=1) / np.sqrt(len(projected))
        assert abs(projected.mean() - exact @ direction) < 4 * se, (projected.mean(), exact @ direction, se)


def test_the_control_variate_reduces_variance_more_as_acceptance_rises():
    # acceptance 0.25 (uniform logits: one answer in four) and 0.98 (the third token all
    # but fixed by the first two and the answer): the variance ratio without / with the
    # control variate is about 1 at the first and several times at the second (the paper's
    # toy: 1.07 and 4.43). 300 estimates each: the ratio's relative standard error is about
    # 0.12, hence the bounds
    x, y = toy_data()
    low = {n: np.zeros(s) for n, s in shapes(len(x)).items()}
    high = {n: np.zeros(s) for n, s in shapes(len(x)).items()}
    for i, answer in enumerate(y.tolist()):
        for a in range(4):
            for b in range(4):
                high["third"][i, a, b, (answer - a - b) % 4] = np.log(0.98 * 3 / 0.02)
    ratios = {}
    for name, params in (("low", low), ("high", high)):
        acceptance = np.exp(mean_log_likelihood(params, x, y))
        without = _estimates(params, x, y, 300, seed=1, control_variate=False)
        with_cv = _estimates(params, x, y, 300, seed=2)
        ratios[name] = (acceptance, without.var(0, ddof=1).sum() / with_cv.var(0, ddof=1).sum())
    assert abs(ratios["low"][0] - 0.25) < 1e-6 and abs(ratios["high"][0] - 0.98) < 1e-6
    assert 0.8 < ratios["low"][1] < 1.35, ratios
    assert ratios["high"][1] > 3.0, ratios


def test_training_reaches_exact_gradient_ascent_within_a_bound(on_backend):
    # Adam(0.05), 300 full-batch steps from the same start: exact gradient ascent on the
    # enumerated likelihood reaches about -0.002 nats per example (the paper: -0.005), TRICE
    # about -0.03 to -0.05 (the paper: -0.02 to -0.05); the bound: 0.1 nats of exact
    x, y = toy_data()
    trice = TRICE(rationale_model, Adam(0.05), rng_seed=0)
    trice.run(x, y, num_steps=300, progress=False)
    reached = mean_log_likelihood(trice.params, x, y)
    theta = {n: torch.tensor(v, dtype=torch.float32, requires_grad=True)
             for n, v in initial_logits(len(x)).items()}
    optimizer = torch.optim.Adam(list(theta.values()), lr=0.05)
    target = torch.as_tensor(np.asarray(y).astype(np.int64))
    for _ in range(300):
        optimizer.zero_grad()
        (-_exact_mean_log_likelihood(theta, target)).backward()
        optimizer.step()
    exact = mean_log_likelihood({n: v.detach() for n, v in theta.items()}, x, y)
    assert exact > -0.01
    assert reached > exact - 0.1, (reached, exact)
    assert bool(np.asarray(trice.memory[1]).all())  # every example holds a correct rationale


def test_a_minibatch_updates_only_its_rows_of_the_memory():
    x, y = toy_data()
    trice = TRICE(rationale_model, Adam(0.05), rng_seed=0)
    trice.step(x, y, batch_size=3)
    valid = trice.memory[1]
    assert int(valid.sum()) <= 3 and tuple(trice.memory[0]["z1"].shape) == (8,)


def test_a_checkpoint_resumes_the_run_exactly(tmp_path):
    x, y = toy_data()
    first = TRICE(rationale_model, Adam(0.05), rng_seed=0)
    first.run(x, y, num_steps=5, progress=False)
    first.save(tmp_path / "trice.ckpt")
    second = TRICE(rationale_model, Adam(0.05), rng_seed=1)
    second.load(tmp_path / "trice.ckpt")
    first.run(x, y, num_steps=3, progress=False)
    second.run(x, y, num_steps=3, progress=False)
    for name in NAMES:
        torch.testing.assert_close(first.params[name], second.params[name])
    torch.testing.assert_close(first.memory[0]["z3"], second.memory[0]["z3"])


def _global_latent(y):
    g = ppl.sample("g", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(y)):
        z = ppl.sample("z", dist.Normal(g, 1.0))
        ppl.sample("y", dist.Normal(z, 1.0), obs=y)


def _global_observation(y):
    with ppl.plate("data", len(y)):
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("y", dist.Normal(z, 1.0), obs=y)
    ppl.sample("total", dist.Normal(0.0, 10.0), obs=y.sum())


def _no_observation(y):
    with ppl.plate("data", len(y)):
        ppl.sample("z", dist.Normal(0.0, 1.0))


def _unplated(y):
    z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(z, 1.0), obs=y)


@pytest.mark.parametrize("model, match", [
    (_global_latent, "latent site 'g' lies in no plate"),
    (_global_observation, "site 'total' lies outside the data plate 'data'"),
    (_no_observation, "observes nothing"),
    (_unplated, "latent site 'z' lies in no plate"),
])
def test_models_trice_cannot_train_are_named(model, match):
    with pytest.raises(ppl.errors.SiteError, match=match):
        TRICE(model).step(torch.zeros(3))


def test_an_observation_that_cannot_be_scored_is_named():
    def model(y):
        with ppl.plate("data", len(y)):
            z = ppl.sample("z", dist.Normal(0.0, 1.0))
            ppl.sample("y", dist.Poisson(torch.exp(z)), obs=y)
    with pytest.raises(ppl.errors.SiteError, match="site 'y'"):
        TRICE(model).step(torch.tensor([1.0, -2.0, 0.5]))


def test_a_proposal_missing_a_site_is_named():
    def partial(x, y):
        with ppl.plate("data", len(x)):
            ppl.sample("z1", dist.Categorical(torch.full((4,), 0.25)))
    x, y = toy_data()
    with pytest.raises(ppl.errors.SiteError, match="proposal has no site 'z2'"):
        TRICE(rationale_model, proposal=partial).step(x, y)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_gradient_terms": 0}, "num_gradient_terms must be a positive integer"),
    ({"control_variate": "yes"}, "control_variate must be True, False or None"),
    ({"control_variate": True, "proposal": lambda x, y: None},
     "zero in mean only for proposals from the model"),
    ({"max_plate_nesting": -1}, "max_plate_nesting must be a non-negative integer"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TRICE(rationale_model, **kwargs)


LOCS = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])


def _soft(y):
    # a likelihood that is not an answer check: the general Metropolis-Hastings ratio
    logits = ppl.param("logits", torch.tensor([0.3, -0.2, 0.1, 0.0, -0.4]))
    with ppl.plate("data", len(y)):
        z = ppl.sample("z", dist.Categorical(logits=logits))
        ppl.sample("y", dist.Normal(LOCS[z], 1.0), obs=y)


def test_the_general_acceptance_ratio_keeps_the_gradient_unbiased():
    # memory drawn from the exact posterior p(z | y) ~ p(z) N(y; loc_z, 1); one TRICE step's
    # move (SGD, lr 1) along each of the five logits' directions lies within 4 standard
    # errors of the exact gradient of the mean log p(y_i): a wrong acceptance ratio moves
    # the memory off the posterior
    y = torch.tensor([-1.7, 0.4, 2.2, 0.9, -0.3, 1.5])
    logits = torch.tensor([0.3, -0.2, 0.1, 0.0, -0.4], requires_grad=True)
    joint = torch.log_softmax(logits, 0)[None, :] + dist.Normal(LOCS, 1.0).log_prob(y[:, None])
    torch.logsumexp(joint, 1).mean().backward()
    posterior = torch.softmax(joint.detach(), 1).numpy()
    rng = np.random.default_rng(0)
    moves = []
    for r in range(400):
        trice = TRICE(_soft, SGD(1.0), rng_seed=r)
        z = [rng.choice(5, p=p / p.sum()) for p in posterior]
        trice.memory = ({"z": torch.tensor(z)}, torch.ones(6, dtype=torch.bool))
        trice.step(y)
        moves.append((trice.params["logits"] - torch.tensor([0.3, -0.2, 0.1, 0.0, -0.4])).numpy())
    moves = np.array(moves)
    se = moves.std(0, ddof=1) / np.sqrt(len(moves))
    assert np.all(np.abs(moves.mean(0) - logits.grad.numpy()) < 4 * se), (moves.mean(0), logits.grad)

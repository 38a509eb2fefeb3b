"""The discrete VAE against hand-written densities and exact enumeration, and GFlowNet-EM's
log-likelihood estimate on it against the exact log p(x)."""

import math

import pyro
import pytest
import torch

import ppl
from inference import ELBO, IWAE, VI, Adam, GFlowNetEM, Importance
from models.data import load_binarized_digits
from models.discrete_vae import DiscreteVAE

X = load_binarized_digits("train")[:6]


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    torch.manual_seed(0)
    yield
    pyro.clear_param_store()


def hand_log_joint(vae, x, codes):
    """log p(x, z) written out: uniform prior and Bernoulli pixels from the decoder's MLP."""
    onehot = torch.nn.functional.one_hot(codes, vae.num_values).float().flatten(-2)
    lin1, lin2 = vae.decoder[0], vae.decoder[2]
    logits = torch.relu(onehot @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias
    log_lik = (x * torch.nn.functional.logsigmoid(logits)
               + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum(-1)
    return log_lik - vae.num_codes * math.log(vae.num_values)


def trace_log_density(trace, names):
    return sum(trace[n].log_prob for n in names)


@pytest.mark.parametrize("one_hot", [False, True])
def test_model_log_joint_matches_hand_written(one_hot):
    vae = DiscreteVAE(num_codes=16, num_values=4, hidden=32, one_hot=one_hot)
    codes = torch.randint(4, (len(X), 16))
    values = {n: codes[:, i] for i, n in enumerate(vae.sites)}
    if one_hot:
        values = {n: torch.nn.functional.one_hot(v, 4).float() for n, v in values.items()}
    with torch.no_grad():
        trace = ppl.trace(ppl.condition(vae.model, values))(X)
        program = trace_log_density(trace, vae.sites + ["x"])
    expected = hand_log_joint(vae, X, codes)
    assert program.shape == (len(X),)
    torch.testing.assert_close(program, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(vae.log_joint(X, codes), expected, atol=1e-4, rtol=1e-5)


def test_guide_log_density_matches_hand_written():
    vae = DiscreteVAE(num_codes=16, num_values=5, hidden=32)
    codes = torch.randint(5, (len(X), 16))
    with torch.no_grad():
        trace = ppl.trace(ppl.condition(vae.guide, {n: codes[:, i] for i, n in enumerate(vae.sites)}))(X)
        program = trace_log_density(trace, vae.sites)
        lin1, lin2 = vae.encoder[0], vae.encoder[2]
        logits = (torch.relu(X @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias).reshape(-1, 16, 5)
        expected = sum(logits[:, i].log_softmax(-1)[torch.arange(len(X)), codes[:, i]] for i in range(16))
    torch.testing.assert_close(program, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(vae.log_guide(X, codes), expected, atol=1e-4, rtol=1e-5)


def test_guide_codes_are_independent_given_x():
    """Mean-field: changing one code's value leaves the other codes' log-densities alone."""
    vae = DiscreteVAE(num_codes=4, num_values=3, hidden=16)
    a = torch.zeros(len(X), 4, dtype=torch.long)
    b = a.clone()
    b[:, 0] = 2
    with torch.no_grad():
        ta = ppl.trace(ppl.condition(vae.guide, {n: a[:, i] for i, n in enumerate(vae.sites)}))(X)
        tb = ppl.trace(ppl.condition(vae.guide, {n: b[:, i] for i, n in enumerate(vae.sites)}))(X)
    for name in vae.sites[1:]:
        torch.testing.assert_close(ta[name].log_prob, tb[name].log_prob)


def test_exact_log_likelihood_by_enumeration():
    vae = DiscreteVAE(num_codes=3, num_values=3, hidden=16)
    codes = torch.cartesian_prod(*[torch.arange(3)] * 3)  # [27, 3]
    brute = torch.stack([hand_log_joint(vae, X, c.expand(len(X), 3)) for c in codes]).logsumexp(0)
    torch.testing.assert_close(vae.exact_log_likelihood(X), brute, atol=1e-4, rtol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_values"):
        DiscreteVAE(num_values=1)
    with pytest.raises(ValueError, match="one_hot=True"):
        DiscreteVAE(num_codes=2).estimators("gumbel")
    with pytest.raises(ValueError, match=r"x must be \[batch, 64\]"):
        DiscreteVAE(num_codes=2).model(torch.zeros(3, 10))


def _sampler_table(em, vae, x):
    """log q(z | x) of every configuration from the sampler and log p(x, z): [N, C] each."""
    log_q = em.trajectory_log_probs(x).reshape(len(x), -1)
    grids = torch.meshgrid(*[torch.arange(vae.num_values)] * vae.num_codes, indexing="ij")
    codes = torch.stack([g.reshape(-1) for g in grids], -1)  # [C, num_codes], same order
    log_p = vae.log_joint(x.unsqueeze(0), codes.unsqueeze(1)).T  # [N, C]
    return log_q, log_p


def test_gflownet_em_evaluate_matches_exact_log_likelihood():
    """On a 4-code, K=2 grid (16 configurations) GFlowNet-EM trains, its sampler approaches
    the exact posterior, and evaluate() agrees with exact enumeration within the importance
    sampler's own standard error (computed exactly from the sampler's distribution)."""
    x = X[:4]
    vae = DiscreteVAE(num_codes=4, num_values=2, hidden=16)
    em = GFlowNetEM(vae.model, hidden=32, num_trajectories=16, optimizer=Adam(3e-3),
                    model_optimizer=Adam(3e-3))
    em.run(x, num_steps=300, progress=False)
    exact = vae.exact_log_likelihood(x)
    log_q, log_p = _sampler_table(em, vae, x)
    posterior = (log_p - exact[:, None]).exp()
    total_variation = 0.5 * (posterior - log_q.exp()).abs().sum(-1)
    assert total_variation.max() < 0.25, total_variation
    samples = 2000
    estimate = em.evaluate(x, num_samples=samples)
    # delta method: Var(log p_hat_i) ~ (E_q[w^2] / p(x)^2 - 1) / M per image, summed over images
    second_moment = torch.logsumexp(2 * log_p - log_q, -1) - 2 * exact
    stderr = math.sqrt(float((second_moment.exp() - 1).clamp(min=0).sum()) / samples)
    assert abs(estimate - float(exact.sum())) < 4 * stderr + 1e-3, (estimate, float(exact.sum()), stderr)


def test_minibatch_gflownet_follows_the_batch_size():
    vae = DiscreteVAE(num_codes=2, num_values=2, hidden=8)
    em = GFlowNetEM(vae.model, hidden=8, num_trajectories=2, sleep=1.0, sleep_probability=1.0)
    em.step(X[:4])
    em.step(X[:3])
    per_image = em.evaluate(X[:5], num_samples=4000, per_element=True)
    assert per_image.shape == (5,)
    torch.testing.assert_close(per_image, vae.exact_log_likelihood(X[:5]), atol=0.05, rtol=0)


@pytest.mark.parametrize("kind", ["score", "gumbel"])
def test_vi_with_the_mean_field_guide_and_importance(kind):
    """Both baselines' training paths run, and Importance with the guide agrees with exact
    enumeration within its reported standard error."""
    vae = DiscreteVAE(num_codes=3, num_values=2, hidden=16, one_hot=kind == "gumbel")
    objective = IWAE(8) if kind == "score" else ELBO()
    vi = VI(vae.model, vae.guide, objective, Adam(1e-2), estimators=vae.estimators(kind))
    losses = vi.run(X, num_steps=30, progress=False)
    assert all(math.isfinite(v) for v in losses)
    exact = vae.exact_log_likelihood(X[:1])
    result = Importance(vae.model, vae.guide, num_particles=4000).run(X[:1])
    assert abs(result.log_evidence - float(exact)) < 4 * result.log_evidence_stderr + 1e-3

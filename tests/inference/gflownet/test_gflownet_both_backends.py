"""GFlowNet-EM written once: the same sampler, losses, replay, local search, sleep, M-steps
and checkpoints on torch and on JAX (an Equinox policy, each update one compiled step),
against exact enumeration and exact EM."""

import math

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import Adam, GFlowNetEM
from inference.gflownet import losses
from models import mixture_weights_mle
from models.mixture import MEANS as MIXTURE_MEANS
from models.mixture import mixture_data
from ppl.errors import NonFiniteError, SiteError, UnsupportedError

MEANS = np.array([[-3.0, -1.0], [0.0, 1.0], [2.0, 4.0]])  # [c1, c2]
PRIOR_C1 = np.array([0.3, 0.5, 0.2])
X = np.array([-2.5, 0.7, 3.1])


def two_level(x):
    """c1 in {0, 1, 2}, c2 | c1 in {0, 1}, x ~ Normal(MEANS[c1, c2], 1): 6 configurations."""
    ops = ppl.get_backend().ops
    with ppl.plate("data", x.shape[0]):
        c1 = ppl.sample("c1", dist.Categorical(ops.asarray(PRIOR_C1, like=x)))
        c2 = ppl.sample("c2", dist.Bernoulli(0.3 + 0.2 * ops.astype(c1, x)))
        ppl.sample("x", dist.Normal(ops.asarray(MEANS, like=x)[c1, ops.to_index(c2)], 1.0), obs=x)


def exact_posterior(x):
    """p(c1, c2 | x_i) by enumerating the six configurations: [N, 3, 2] (NumPy)."""
    p2 = 0.3 + 0.2 * np.arange(3)
    log_c2 = np.log(np.stack([1 - p2, p2], -1))
    joint = (np.log(PRIOR_C1)[None, :, None] + log_c2[None]
             - 0.5 * (x[:, None, None] - MEANS[None]) ** 2)
    joint = np.exp(joint - joint.max((1, 2), keepdims=True))
    return joint / joint.sum((1, 2), keepdims=True)


def data(values):
    return ppl.get_backend().ops.asarray(np.asarray(values, dtype=np.float32))


@pytest.mark.parametrize("options", [{}, {"loss": "subtb", "replay": 4, "local_search": 1}])
def test_the_trained_sampler_matches_the_exact_posterior(on_backend, options):
    # the sampler's own distribution (exact, by enumerating its trajectories) within 0.05 in
    # total variation of the posterior, per element, as the torch-only test has long held
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    num_trajectories=16, rng_seed=0, **options)
    x = data(X)
    em.run(x, num_steps=1200, progress=False)
    sampler = np.exp(np.asarray(em.trajectory_log_probs(x)))
    total_variation = 0.5 * np.abs(sampler - exact_posterior(X)).reshape(3, -1).sum(-1)
    assert np.all(total_variation < 0.05), total_variation
    if options.get("local_search"):
        assert 0.0 < em.acceptance_rate <= 1.0
        trajectories, log_rewards = em.sampler.buffer
        assert np.all(np.diff(np.asarray(log_rewards), axis=0) <= 0)  # sorted, best first
        best = exact_posterior(X).reshape(3, -1).argmax(-1)
        assert np.array_equal(np.asarray(trajectories[0, :, 0] * 2 + trajectories[0, :, 1]), best)


def mixture(x):
    """The mixture of ``models.mixture`` (its means, unit scale), written for both backends."""
    ops = ppl.get_backend().ops
    weights = ppl.param("weights", ops.asarray(np.full(3, 1 / 3, dtype=np.float32)),
                        constraint=dist.constraints.simplex)
    with ppl.plate("data", x.shape[0]):
        c = ppl.sample("c", dist.Categorical(weights))
        ppl.sample("x", dist.Normal(ops.asarray(MIXTURE_MEANS, like=x)[c], 1.0), obs=x)


@pytest.mark.parametrize("m_step", ["sampled", "reweighted"])
def test_gflownet_em_fits_mixture_weights_like_exact_em(on_backend, m_step):
    y = mixture_data(300, [0.2, 0.3, 0.5], seed=3)
    em = GFlowNetEM(mixture, hidden=32, e_steps=2, num_trajectories=4, m_step=m_step, rng_seed=1)
    em.run(data(y.numpy()), num_steps=600, progress=False)
    weights = np.asarray(em.params["weights"])
    mle = mixture_weights_mle(y)
    se = np.sqrt(mle * (1 - mle) / len(y))
    # stochastic EM hovers around the MLE; within one standard error of the MLE itself
    assert np.all(np.abs(weights - mle) < se), (weights, mle, se)


def test_the_evidence_is_the_exact_log_likelihood(on_backend):
    # log p(x) by importance sampling with a trained sampler, against the closed form (the
    # two-level model's six configurations summed); a close sampler makes the error small
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    rng_seed=2)
    x = data(X)
    em.run(x, num_steps=400, progress=False)
    p2 = 0.3 + 0.2 * np.arange(3)
    joint = (np.log(PRIOR_C1)[None, :, None] + np.log(np.stack([1 - p2, p2], -1))[None]
             - 0.5 * (X[:, None, None] - MEANS[None]) ** 2 - 0.5 * math.log(2 * math.pi))
    exact = float(np.log(np.exp(joint).reshape(3, -1).sum(-1)).sum())
    assert em.evaluate(x, num_samples=2000) == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize("options", [{"replay": 2, "m_step_threshold": (5.0, 1.0, 10)},
                                     {"loss": "db", "local_search": 1, "sleep": 1.0}])
def test_a_checkpoint_resumes_exactly(on_backend, tmp_path, options):
    y = data(mixture_data(50, [0.2, 0.3, 0.5], seed=4).numpy())
    em = GFlowNetEM(mixture, hidden=16, num_trajectories=2, rng_seed=3, **options)
    em.run(y, num_steps=5, progress=False)
    em.save(tmp_path / "em")
    continued = em.run(y, num_steps=4, progress=False)
    weights = np.asarray(em.params["weights"])

    torch.manual_seed(99)
    resumed = GFlowNetEM(mixture, hidden=16, num_trajectories=2, rng_seed=7, **options)
    resumed.load(tmp_path / "em")
    assert resumed.run(y, num_steps=4, progress=False) == continued
    assert np.array_equal(np.asarray(resumed.params["weights"]), weights)


def test_the_balance_losses_are_the_same_numbers_on_both_backends():
    jnp = pytest.importorskip("jax.numpy")
    ppl.get_backend("jax")
    rng = np.random.default_rng(0)
    flows, pf, pb = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    reward, lengths = rng.normal(size=4).astype(np.float32), np.array([1, 2, 3, 2])
    for name, call in [("subtb", lambda a: losses.subtrajectory_balance(*a[:3], 0.8, *a[3:])),
                       ("db", lambda a: losses.detailed_balance(*a))]:
        on_torch = call([torch.as_tensor(v) for v in (flows, pf, reward, pb, lengths)])
        on_jax = call([jnp.asarray(v) for v in (flows, pf, reward, pb, lengths)])
        np.testing.assert_allclose(np.asarray(on_jax), on_torch.numpy(), rtol=1e-5, err_msg=name)


def test_an_infinite_observation_is_named_on_both_backends(on_backend):
    # torch's recorder lets it through to the policy's features; NumPyro's checks supports
    with pytest.raises((NonFiniteError, SiteError),
                       match="site 'x'( has a non-finite observed value|: 1 of 3 observed values lie "
                             "outside the support)"):
        GFlowNetEM(two_level, hidden=8).step(data([0.0, math.inf, 1.0]))


def test_jax_refuses_a_torch_policy_and_an_action_space_by_name():
    pytest.importorskip("numpyro")
    ppl.set_backend("jax")
    with pytest.raises(ValueError, match="policy: on the jax backend a module is an equinox.Module, "
                                         "not Linear"):
        GFlowNetEM(two_level, policy=torch.nn.Linear(2, 2)).step(data(X))
    with pytest.raises(UnsupportedError, match="GFlowNet-EM with an action_space is not supported "
                                               "on the jax backend"):
        GFlowNetEM(two_level, action_space=object())


# ----------------------------------------------------- a fixed policy, known in closed form
STEP_LOGITS = np.array([[0.0, 1.0, 2.0], [0.5, -0.5, -1e9]], dtype=np.float32)  # c1's, c2's (+ pad)


def fixed_logits_policy():
    """The same logits at every state, on the active backend; log Z its only parameter."""
    if ppl.get_backend().name == "torch":
        class FixedLogits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.log_z = torch.nn.Parameter(torch.zeros(()))

            def forward(self, features, state, step):
                return torch.as_tensor(STEP_LOGITS[step]).expand(len(features), 3) + 0.0 * self.log_z

            def log_partition(self, features):
                return self.log_z.expand(len(features))

        return FixedLogits()
    import equinox as eqx
    import jax.numpy as jnp

    class JaxFixedLogits(eqx.Module):
        log_z: jnp.ndarray

        def __call__(self, features, state, step):
            return jnp.broadcast_to(jnp.asarray(STEP_LOGITS[step]), (features.shape[0], 3)) + 0.0 * self.log_z

        def log_partition(self, features):
            return jnp.broadcast_to(self.log_z, (features.shape[0],))

    return JaxFixedLogits(jnp.zeros(()))


def log_softmax(logits):
    return logits - np.log(np.exp(logits).sum())


def test_local_search_accepts_with_the_metropolis_hastings_probability(on_backend):
    # local_search=1 keeps c1 and rebuilds c2 with P_F; a move from c2 to c2' is accepted with
    # min(1, R(c1, c2') P_F(c2) / (R(c1, c2) P_F(c2'))). Its mean over c1, c2, c2' drawn from
    # P_F, summed exactly, against the rate of one E-step's 3 x 4000 moves (4 binomial s.e.)
    num = 4000
    em = GFlowNetEM(two_level, policy=fixed_logits_policy(), m_step=None, local_search=1,
                    num_trajectories=num, rng_seed=0)
    em.e_step(data(X))
    p1, p2 = np.exp(log_softmax(STEP_LOGITS[0])), np.exp(log_softmax(STEP_LOGITS[1][:2]))
    joint = exact_posterior(X) * 1.0  # R is proportional to the posterior, per element
    expected = 0.0
    for i in range(3):
        for c1 in range(3):
            for old in range(2):
                for new in range(2):
                    ratio = joint[i, c1, new] * p2[old] / (joint[i, c1, old] * p2[new])
                    expected += p1[c1] * p2[old] * p2[new] * min(1.0, ratio) / 3
    se = math.sqrt(expected * (1 - expected) / (3 * num))
    assert abs(em.acceptance_rate - expected) < 4 * se, (em.acceptance_rate, expected, se)


def test_the_sleep_term_is_the_policy_cross_entropy_on_the_model_dreams(on_backend):
    # sleep_loss = -mean log P_F(z | x) over (z, x) dreamed from the model: with a fixed
    # policy its expectation is sum_z p(z) (-log P_F(c1) - log P_F(c2)), in closed form; the
    # mean of 5 dreams of 2000 elements each is within 4 standard errors of it
    em = GFlowNetEM(two_level, policy=fixed_logits_policy(), m_step=None, sleep=1.0, rng_seed=0)
    x = data(np.zeros(2000))
    em._current_features((x,), {})  # set-up
    ops = ppl.get_backend().ops
    losses_ = [ops.item(em.sampler.sleep_loss(em.policy, (x,), {}, key=em.state.next_key()))
               for _ in range(5)]
    q1, q2 = log_softmax(STEP_LOGITS[0]), log_softmax(STEP_LOGITS[1][:2])
    p2 = 0.3 + 0.2 * np.arange(3)
    prior = PRIOR_C1[:, None] * np.stack([1 - p2, p2], -1)  # p(c1, c2)
    terms = -(q1[:, None] + q2[None, :])
    expected = float((prior * terms).sum())
    sd = math.sqrt(float((prior * terms ** 2).sum()) - expected ** 2)
    se = sd / math.sqrt(5 * 2000)
    assert abs(np.mean(losses_) - expected) < 4 * se, (np.mean(losses_), expected, se)


def test_replay_keeps_each_elements_best_and_replays_only_filled_slots(on_backend):
    from inference.gflownet import replay

    ops = ppl.get_backend().ops
    state = replay.empty(ops, capacity=3, size=2, width=1, like=data([0.0]))
    trajectories = ops.to_index(ops.asarray(np.array([[[0], [1]], [[2], [3]]])))
    state = replay.added(ops, state, trajectories, data([[0.0, 5.0], [2.0, -1.0]]))
    held, log_r = state
    assert np.asarray(held)[:2, :, 0].tolist() == [[2, 1], [0, 3]]  # best first per element
    assert np.asarray(log_r)[:2].tolist() == [[2.0, 5.0], [0.0, -1.0]]
    assert np.all(np.isneginf(np.asarray(log_r)[2]))  # the slot not filled yet
    chosen, chosen_r = replay.sampled(ops, state, 4000, ppl.get_backend().new_state(0).next_key())
    chosen = np.asarray(chosen)[..., 0]
    assert set(np.unique(chosen[:, 0])) == {0, 2} and set(np.unique(chosen[:, 1])) == {1, 3}
    share = float(np.mean(chosen[:, 0] == 2))  # uniform over the two filled slots
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / 4000), share
    assert np.all(np.isfinite(np.asarray(chosen_r)))

"""GFlowNet-EM against exact enumeration: trajectory balance, the sampler's distribution, EM."""

import math

import pyro
import pytest
import torch
from torch import nn

import ppl
import ppl.distributions as dist
from inference import SGD, Adam, GFlowNetEM
from inference.gflownet.losses import detailed_balance, subtrajectory_balance, trajectory_balance
from models import mixture_data, mixture_model, mixture_weights_mle
from ppl.errors import CheckpointError

MEANS = torch.tensor([[-3.0, -1.0], [0.0, 1.0], [2.0, 4.0]])  # [c1, c2]
PRIOR_C1 = torch.tensor([0.3, 0.5, 0.2])
X = torch.tensor([-2.5, 0.7, 3.1])


def two_level(x):
    """c1 in {0, 1, 2}, c2 | c1 in {0, 1}, x ~ Normal(MEANS[c1, c2], 1): 6 configurations."""
    with ppl.plate("data", len(x)):
        c1 = ppl.sample("c1", dist.Categorical(PRIOR_C1))
        c2 = ppl.sample("c2", dist.Bernoulli(0.3 + 0.2 * c1))
        ppl.sample("x", dist.Normal(MEANS[c1, c2.long()], 1.0), obs=x)


def exact_log_joint(x):
    """log p(x_i, c1, c2): [N, 3, 2]."""
    c1 = torch.arange(3)[:, None]
    p2 = 0.3 + 0.2 * c1
    log_c2 = torch.stack([torch.log1p(-p2), torch.log(p2)], -1).squeeze(1)  # [3, 2]
    log_lik = torch.distributions.Normal(MEANS, 1.0).log_prob(x[:, None, None])
    return PRIOR_C1.log()[None, :, None] + log_c2[None] + log_lik


class ExactPolicy(nn.Module):
    """The exact posterior conditionals P(c1 | x), P(c2 | c1, x) and log Z(x) = log p(x)."""

    def __init__(self, x):
        super().__init__()
        self.table = exact_log_joint(x)
        self.x = x
        self.dummy = nn.Parameter(torch.zeros(()))

    def _rows(self, features):
        return ((features[:, :1] - self.x[None, :]).abs().argmin(-1))

    def forward(self, features, state, step):
        joint = self.table[self._rows(features)]  # [n, 3, 2]
        if step == 0:
            return torch.logsumexp(joint, -1)
        c1 = state[:, :3].argmax(-1)
        logits = joint[torch.arange(len(c1)), c1]
        return torch.cat([logits, torch.full_like(logits[:, :1], -1e9)], -1)

    def log_partition(self, features):
        return torch.logsumexp(self.table[self._rows(features)].reshape(len(features), -1), -1)

    def log_flow(self, features, state, step):
        joint = self.table[self._rows(features)]
        if step == 0:
            return torch.logsumexp(joint.reshape(len(features), -1), -1)
        c1 = state[:, :3].argmax(-1)
        return torch.logsumexp(joint[torch.arange(len(c1)), c1], -1)


def test_balance_losses_are_zero_for_the_exact_posterior_policy_and_flows():
    em = GFlowNetEM(two_level, policy=ExactPolicy(X), m_step=None)
    features = em._current_features((X,), {}).repeat(50, 1)
    values, log_pf_steps, log_flows = em.sampler.construct(em.policy, features, flows=True)
    log_r = em.sampler.log_reward(values, (X,), {}, num=50)[0].reshape(-1)
    log_z = em.policy.log_partition(features)
    assert float(trajectory_balance(log_z, log_pf_steps.sum(-1), log_r).max()) < 1e-8
    assert float(detailed_balance(log_flows, log_pf_steps, log_r).max()) < 1e-8
    assert float(subtrajectory_balance(log_flows, log_pf_steps, log_r).max()) < 1e-8
    # and not for a wrong flow
    assert float(detailed_balance(log_flows + 0.1, log_pf_steps, log_r).min()) > 1e-4


def test_a_global_site_counts_once_in_the_evidence_and_not_in_the_e_step_rewards():
    # before: the layout added "g" to every element: the evidence counted it 3 times and the
    # exact policy's trajectory balance was off by log p(g) for every element
    G = torch.tensor(3.0)

    def with_global(x):
        ppl.sample("g", dist.Normal(0.0, 1.0), obs=G)
        two_level(x)

    em = GFlowNetEM(with_global, policy=ExactPolicy(X), m_step=None)
    features = em._current_features((X,), {}).repeat(50, 1)
    values, log_pf_steps, _ = em.sampler.construct(em.policy, features)
    log_r = em.sampler.log_reward(values, (X,), {}, num=50, global_sites=False)[0].reshape(-1)
    log_z = em.policy.log_partition(features)
    assert float(trajectory_balance(log_z, log_pf_steps.sum(-1), log_r).max()) < 1e-8
    # the exact posterior as proposal: every weight is p(x_i), so the estimate is exact
    exact = float(torch.logsumexp(exact_log_joint(X).reshape(3, -1), -1).sum()
                  + torch.distributions.Normal(0.0, 1.0).log_prob(G))
    assert em.evaluate(X, num_samples=20) == pytest.approx(exact, abs=1e-4)


@pytest.mark.parametrize("loss,sleep", [("tb", 0.0), ("subtb", 0.0), ("db", 0.0), ("tb", 0.2)])
def test_trained_sampler_matches_the_exact_posterior(loss, sleep):
    em = GFlowNetEM(two_level, loss=loss, m_step=None, hidden=64, epsilon=0.05,
                    optimizer=Adam(lr=3e-3), num_trajectories=16, sleep=sleep)
    em.run(X, num_steps=600, progress=False)
    sampler = em.trajectory_log_probs(X).exp()  # [N, 3, 2]
    exact = exact_log_joint(X)
    exact = (exact - torch.logsumexp(exact.reshape(3, -1), -1)[:, None, None]).exp()
    total_variation = 0.5 * (sampler - exact).abs().reshape(3, -1).sum(-1)
    assert torch.all(total_variation < 0.05), total_variation
    # each site's marginal is as close to the exact one: marginalising never increases the
    # total variation distance, so the joint's measured distance bounds it
    probs = em.posterior_probs(X)
    for name, marginal in (("c1", exact.sum(-1)), ("c2", exact.sum(-2))):
        distance = 0.5 * (probs[name] - marginal).abs().sum(-1)
        assert torch.all(distance <= total_variation + 1e-6), (name, distance, total_variation)
    # importance sampling with the sampler as proposal recovers log p(x)
    log_evidence = float(torch.logsumexp(exact_log_joint(X).reshape(3, -1), -1).sum())
    assert abs(em.evaluate(X, num_samples=2000) - log_evidence) < 0.02


def test_a_user_defined_order_builds_the_sites_in_that_order():
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    num_trajectories=16, order=["c2", "c1"])
    em.run(X, num_steps=600, progress=False)
    assert [slot.name for slot in em.slots] == ["c2", "c1"]
    sampler = em.trajectory_log_probs(X).exp().transpose(-1, -2)  # [N, c2, c1] -> [N, c1, c2]
    exact = exact_log_joint(X)
    exact = (exact - torch.logsumexp(exact.reshape(3, -1), -1)[:, None, None]).exp()
    assert torch.all(0.5 * (sampler - exact).abs().reshape(3, -1).sum(-1) < 0.05)


@pytest.mark.parametrize("m_step", ["sampled", "reweighted"])
def test_gflownet_em_fits_mixture_weights_like_exact_em(m_step):
    y = mixture_data(300, [0.2, 0.3, 0.5], seed=3)
    em = GFlowNetEM(mixture_model, hidden=32, e_steps=2, num_trajectories=4, m_step=m_step)
    em.run(y, num_steps=600, progress=False)
    weights = em.params["weights"]
    mle = torch.as_tensor(mixture_weights_mle(y), dtype=weights.dtype)
    se = (mle * (1 - mle) / len(y)).sqrt()
    # stochastic EM hovers around the MLE; within one standard error of the MLE itself
    assert torch.all((weights - mle).abs() < se), (weights, mle, se)


def test_bad_input():
    def continuous(x):
        with ppl.plate("data", len(x)):
            z = ppl.sample("z", dist.Normal(0.0, 1.0))
            ppl.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match="latent site 'z' \\(Normal\\) is not a discrete"):
        GFlowNetEM(continuous).step(X)

    def nothing_latent(x):
        ppl.sample("x", dist.Normal(0.0, 1.0), obs=x)

    with pytest.raises(ValueError, match="no latent site"):
        GFlowNetEM(nothing_latent).step(X)
    with pytest.raises(ValueError, match="loss must be one of"):
        GFlowNetEM(two_level, loss="fm")
    with pytest.raises(ValueError, match="order names 'c3', which is not a latent site"):
        GFlowNetEM(two_level, order=["c1", "c3"]).step(X)
    with pytest.raises(ValueError, match="missing 'c2'"):
        GFlowNetEM(two_level, order=["c1"]).step(X)
    assert math.isfinite(GFlowNetEM(two_level, m_step=None).step(X))


@pytest.mark.parametrize("options", [{}, {"replay": 2, "m_step_threshold": (5.0, 1.0, 10)}])
def test_checkpoint_resumes_exactly(tmp_path, options):
    y = mixture_data(50, [0.2, 0.3, 0.5], seed=4)
    em = GFlowNetEM(mixture_model, hidden=16, num_trajectories=2, **options)
    em.run(y, num_steps=5, progress=False)
    em.save(tmp_path / "em.pt")
    continued = em.run(y, num_steps=4, progress=False)
    weights = em.params["weights"].clone()

    pyro.clear_param_store()
    torch.manual_seed(99)
    resumed = GFlowNetEM(mixture_model, hidden=16, num_trajectories=2, **options)
    resumed.load(tmp_path / "em.pt")
    assert resumed.run(y, num_steps=4, progress=False) == continued
    assert torch.equal(resumed.params["weights"], weights)


def test_a_checkpoint_of_another_policy_optimiser_is_refused_and_changes_nothing(tmp_path):
    # torch's Optimizer.load_state_dict took Adam's state into SGD without a word (the next
    # step failed with KeyError 'momentum'); the sampler now records its optimiser's name
    y = mixture_data(20, [0.2, 0.3, 0.5], seed=4)
    em = GFlowNetEM(mixture_model, hidden=8, num_trajectories=2, rng_seed=0)
    em.run(y, num_steps=2, progress=False)
    em.save(tmp_path / "em")
    other = GFlowNetEM(mixture_model, hidden=8, num_trajectories=2, optimizer=SGD(1e-3), rng_seed=0)
    other.run(y, num_steps=2, progress=False)
    policy = {n: v.clone() for n, v in other.policy.state_dict().items()}
    before = (other.params["weights"].clone(), other.step_count, list(other.history))
    with pytest.raises(CheckpointError, match="policy's.*optimiser is Adam and this strategy's is SGD"):
        other.load(tmp_path / "em")
    assert torch.equal(other.params["weights"], before[0]) and (other.step_count, other.history) == before[1:]
    assert all(torch.equal(v, policy[n]) for n, v in other.policy.state_dict().items())
    fresh = GFlowNetEM(mixture_model, hidden=8, optimizer=SGD(1e-3))  # refused before it runs too
    with pytest.raises(CheckpointError, match="policy's.*optimiser is Adam and this strategy's is SGD"):
        fresh.load(tmp_path / "em")


def test_replay_buffer_keeps_the_best_trajectories_and_still_converges():
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    num_trajectories=16, replay=4)
    em.run(X, num_steps=600, progress=False)
    values, log_r = em.sampler.buffer  # [capacity, N, T] and [capacity, N]
    assert values.shape == (4, 3, 2) and torch.all(log_r[:-1] >= log_r[1:])  # sorted, best first
    # the best configuration of each element is in its buffer
    best = exact_log_joint(X).reshape(3, -1).argmax(-1)
    assert torch.equal(values[0, :, 0] * 2 + values[0, :, 1], best)
    sampler = em.trajectory_log_probs(X).exp()
    exact = exact_log_joint(X)
    exact = (exact - torch.logsumexp(exact.reshape(3, -1), -1)[:, None, None]).exp()
    assert torch.all(0.5 * (sampler - exact).abs().reshape(3, -1).sum(-1) < 0.05)


def test_adaptive_schedule_holds_the_m_step_until_the_sampler_fits():
    y = mixture_data(50, [0.2, 0.3, 0.5], seed=5)
    never = GFlowNetEM(mixture_model, hidden=16, num_trajectories=2, m_step_threshold=(-1.0, -1.0, 1))
    never.run(y, num_steps=20, progress=False)
    assert never.m_steps_taken == 0
    pyro.clear_param_store()
    always = GFlowNetEM(mixture_model, hidden=16, num_trajectories=2, m_step_threshold=(1e9, 1e9, 1))
    always.run(y, num_steps=20, progress=False)
    assert always.m_steps_taken == 20


def test_local_search_accepts_by_metropolis_hastings_and_still_converges():
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    num_trajectories=16, local_search=1, replay=2)
    em.run(X, num_steps=600, progress=False)
    assert 0.0 < em.acceptance_rate <= 1.0
    sampler = em.trajectory_log_probs(X).exp()
    exact = exact_log_joint(X)
    exact = (exact - torch.logsumexp(exact.reshape(3, -1), -1)[:, None, None]).exp()
    assert torch.all(0.5 * (sampler - exact).abs().reshape(3, -1).sum(-1) < 0.05)
    # with the exact posterior as P_F, every rebuild is accepted (the MH ratio is 1)
    exact_em = GFlowNetEM(two_level, policy=ExactPolicy(X), m_step=None, local_search=1,
                          num_trajectories=8)
    features = exact_em._current_features((X,), {}).repeat(8, 1)
    values, log_pf_steps, _ = exact_em.sampler.construct(exact_em.policy, features)
    log_r = exact_em.sampler.log_reward(values, (X,), {}, num=8)[0].reshape(-1)
    _, _, acceptance = exact_em.sampler.search(exact_em.policy, features, values, log_pf_steps, log_r,
                                               (X,), {})
    assert float(acceptance) == 1.0




# ----------------------------------------------------------- the sampler's distribution
def exact_posterior(x):
    """p(c1, c2 | x_i) by enumerating the six configurations: [N, 3, 2]."""
    joint = exact_log_joint(x)
    return (joint - torch.logsumexp(joint.reshape(len(x), -1), -1)[:, None, None]).exp()


def test_posterior_probs_of_the_exact_policy_are_the_exact_marginals():
    # the exact posterior conditionals as P_F make the sampler's distribution the posterior
    # itself, so posterior_probs must give its marginals up to float32 rounding (1e-6)
    em = GFlowNetEM(two_level, policy=ExactPolicy(X), m_step=None)
    probs = em.posterior_probs(X)
    exact = exact_posterior(X)
    assert set(probs) == {"c1", "c2"}
    torch.testing.assert_close(probs["c1"], exact.sum(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(probs["c2"], exact.sum(-2), rtol=0, atol=1e-6)
    torch.testing.assert_close(em.trajectory_log_probs(X).exp(), exact, rtol=0, atol=1e-6)


def _within_binomial_errors(counts, probs, n, z=4.0):
    """|counts / n - p| <= z binomial standard errors sqrt(p (1 - p) / n), plus one draw
    (1 / n: a cell of probability 1e-5 may hold one of the n draws)."""
    se = (probs * (1 - probs) / n).sqrt()
    return ((counts / n - probs).abs() <= z * se + 1.0 / n).all()


def test_posterior_draws_follow_posterior_probs():
    # posterior() draws k * N + i rows and lays them out [num, N]: each element's draws
    # must have the frequencies of its own marginals and joint (18 joint cells and 15
    # marginal ones; z = 4 per cell: a false alarm once in about 500 seeds)
    n = 4000
    em = GFlowNetEM(two_level, policy=ExactPolicy(X), m_step=None, rng_seed=0)
    draws = em.posterior(X, num_samples=n)
    assert draws["c1"].shape == (n, 3) and draws["c2"].shape == (n, 3)
    probs = em.posterior_probs(X)
    for name, size in (("c1", 3), ("c2", 2)):
        counts = nn.functional.one_hot(draws[name].long(), size).sum(0).double()  # [N, size]
        assert _within_binomial_errors(counts, probs[name].double(), n), (name, counts / n, probs[name])
    joint = nn.functional.one_hot(draws["c1"].long() * 2 + draws["c2"].long(), 6).sum(0).double()
    table = em.trajectory_log_probs(X).exp().reshape(3, 6).double()
    assert _within_binomial_errors(joint, table, n), (joint / n, table)


# ------------------------------------------------------------------- the greedy M-step
def two_level_means(x):
    """``two_level`` with the component means a model parameter (initially MEANS)."""
    means = ppl.param("means", MEANS.clone())
    with ppl.plate("data", len(x)):
        c1 = ppl.sample("c1", dist.Categorical(PRIOR_C1))
        c2 = ppl.sample("c2", dist.Bernoulli(0.3 + 0.2 * c1))
        ppl.sample("x", dist.Normal(means[c1, c2.long()], 1.0), obs=x)


def test_greedy_m_step_takes_the_stepwise_argmax_and_the_gradient_step_by_hand():
    # The oracle is exact enumeration. With the exact posterior as P_F, the greedy
    # construction is c1* = argmax_c1 p(c1 | x), then c2* = argmax_c2 p(c2 | c1*, x): the
    # joint MAP at -2.5, 0.7 and 3.1, not at -1.4 (there p(c1 = 0 | x) = 0.57 leads, split
    # 0.23 / 0.33 over c2, but the most probable configuration is (1, 0) at 0.38): "greedy"
    # is the step-wise argmax.
    x = torch.tensor([-2.5, -1.4, 0.7, 3.1])
    posterior = exact_posterior(x)
    c1 = posterior.sum(-1).argmax(-1)
    c2 = posterior[torch.arange(len(x)), c1].argmax(-1)
    joint_map = posterior.reshape(len(x), -1).argmax(-1)
    assert (c1 * 2 + c2 == joint_map).tolist() == [True, False, True, True]

    lr = 0.1
    em = GFlowNetEM(two_level_means, policy=ExactPolicy(x), m_step="greedy",
                    model_optimizer=SGD(lr=lr), rng_seed=0)
    greedy = em.greedy_posterior(x)
    assert greedy["c1"].tolist() == c1.tolist() and greedy["c2"].long().tolist() == c2.tolist()
    loss = em.m_step_update(x)
    # the M-step by hand: loss = -sum_i log p(x_i, z_i*), d loss / d means[k] =
    # -sum_{i: z_i* = k} (x_i - means[k]) (unit noise), and one SGD step of size lr
    assert loss == pytest.approx(-float(exact_log_joint(x)[torch.arange(len(x)), c1, c2].sum()), rel=1e-6)
    expected = MEANS.clone()
    for i in range(len(x)):
        expected[c1[i], c2[i]] += lr * (x[i] - MEANS[c1[i], c2[i]])
    torch.testing.assert_close(em.params["means"], expected, rtol=0, atol=1e-6)


# -------------------------------------------------------------- tempered exploration
STEP_LOGITS = torch.tensor([[0.0, 1.0, 2.0], [0.5, -0.5, 0.0]])


class FixedLogits(nn.Module):
    """The same logits at every state (step 0: c1's three, step 1: c2's two and a pad);
    log Z is the only trained number, so an E-step leaves the action probabilities alone."""

    def __init__(self):
        super().__init__()
        self.log_z = nn.Parameter(torch.zeros(()))

    def forward(self, features, state, step):
        return STEP_LOGITS[step].expand(len(features), 3) + 0.0 * self.log_z

    def log_partition(self, features):
        return self.log_z.expand(len(features))


@pytest.mark.parametrize("temperature,epsilon", [(1.0, 0.0), (0.5, 0.0), (3.0, 0.0), (2.0, 0.2)])
def test_exploration_draws_from_tempered_and_epsilon_mixed_policy(temperature, epsilon):
    # An E-step draws its trajectories from the behaviour policy (1 - epsilon) *
    # softmax(logits / T) + epsilon / |support| (T = 1, epsilon = 0: the policy itself).
    # The first actions of one E-step's 3 x 4000 trajectories are counted (the rewards'
    # inputs) and compared with that formula within 4 binomial standard errors.
    num = 4000
    em = GFlowNetEM(two_level, policy=FixedLogits(), m_step=None, num_trajectories=num,
                    temperature=temperature, epsilon=epsilon, rng_seed=0)
    drawn = []
    em._current_features((X,), {})  # set-up, so that the sampler's log_reward can be wrapped
    original = em.sampler.log_reward

    def spy(values, *args, **kwargs):
        drawn.append(values[0].clone())
        return original(values, *args, **kwargs)

    em.sampler.log_reward = spy
    em.e_step(X)
    assert len(drawn) == 1 and drawn[0].shape == (num * len(X),)
    n = drawn[0].numel()
    counts = torch.bincount(drawn[0], minlength=3).double()
    expected = ((1 - epsilon) * (STEP_LOGITS[0] / temperature).softmax(-1) + epsilon / 3).double()
    assert _within_binomial_errors(counts, expected, n), (counts / n, expected)

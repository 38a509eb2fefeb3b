"""GFlowNet-EM against exact enumeration: trajectory balance, the sampler's distribution, EM."""

import math

import pyro
import pytest
import torch
from torch import nn

import ppl
import ppl.distributions as dist
from inference import Adam, GFlowNetEM
from inference.gflownet.losses import detailed_balance, subtrajectory_balance, trajectory_balance
from models import mixture_data, mixture_model, mixture_weights_mle

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
    values, log_pf_steps, log_flows = em.sampler.construct(features, flows=True)
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
    values, log_pf_steps, _ = em.sampler.construct(features)
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


def test_replay_buffer_keeps_the_best_trajectories_and_still_converges():
    em = GFlowNetEM(two_level, m_step=None, hidden=64, epsilon=0.05, optimizer=Adam(lr=3e-3),
                    num_trajectories=16, replay=4)
    em.run(X, num_steps=600, progress=False)
    values, log_r = em.sampler.buffer.trajectories, em.sampler.buffer.log_rewards
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
    values, log_pf_steps, _ = exact_em.sampler.construct(features)
    log_r = exact_em.sampler.log_reward(values, (X,), {}, num=8)[0].reshape(-1)
    exact_em.sampler.search(features, values, log_pf_steps, log_r, (X,), {})
    assert exact_em.acceptance_rate == 1.0



"""Model-side enumeration: Pyro's Gaussian-mixture tutorial as it is, and a hidden Markov
model of 100 steps with pyro.markov, against Pyro's TraceEnum_ELBO and the forward
algorithm."""

import pyro
import pyro.distributions as pdist
import pyro.infer
import pyro.optim
import pytest
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Adam, Importance
from ppl.errors import SiteError

# ------------------------------------------------------- Pyro's GMM tutorial, verbatim
DATA = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])
K = 2


@config_enumerate
def gmm(data):
    weights = pyro.sample("weights", pdist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", pdist.LogNormal(0.0, 2.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", pdist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", pdist.Categorical(weights))
        pyro.sample("obs", pdist.Normal(locs[assignment], scale), obs=data)


def gmm_guide():
    return AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]))


def test_gmm_tutorial_loss_and_gradient_equal_pyros_trace_enum_elbo():
    guide = gmm_guide()
    vi = VI(gmm, guide, pyro.infer.TraceEnum_ELBO(max_plate_nesting=1), Adam(lr=0.1))
    ours = vi.differentiable_loss(DATA)
    with vi.param_scope():
        theirs = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(gmm, guide, DATA)
        params = [p for _, p in guide.named_parameters()]
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-6)
    for a, b in zip(torch.autograd.grad(ours, params), torch.autograd.grad(theirs, params)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def init_loc_fn(site):  # the tutorial's initialisation, with fixed initial locations
    if site["name"] == "weights":
        return torch.ones(K) / K
    if site["name"] == "scale":
        return (DATA.var() / 2).sqrt()
    if site["name"] == "locs":
        return DATA[torch.tensor([0, 2])]
    raise ValueError(site["name"])


def test_gmm_tutorial_trains_exactly_as_pyros_svi():
    # AutoDelta and enumeration leave nothing random: both runs are deterministic
    steps, options = 200, {"lr": 0.1, "betas": [0.8, 0.99]}
    guide = AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]), init_loc_fn=init_loc_fn)
    vi = VI(gmm, guide, pyro.infer.TraceEnum_ELBO(max_plate_nesting=1), pyro.optim.Adam(options))
    ours = vi.run(DATA, num_steps=steps, progress=False)
    pyro.clear_param_store()
    theirs_guide = AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]),
                             init_loc_fn=init_loc_fn)
    svi = pyro.infer.SVI(gmm, theirs_guide, pyro.optim.Adam(options),
                         pyro.infer.TraceEnum_ELBO(max_plate_nesting=1))
    theirs = [svi.step(DATA) for _ in range(steps)]
    assert ours == pytest.approx(theirs, rel=1e-4)
    for name, value in vi.params.items():
        assert torch.allclose(value, pyro.param(name).detach(), rtol=1e-4, atol=1e-5), name
    locs = sorted(vi.params["AutoDelta.locs"].tolist())
    assert abs(locs[0] - 0.5) < 0.5 and abs(locs[1] - 11.0) < 0.5, locs  # the two clusters


# ---------------------------------------------------------------- an HMM of 100 steps
STATES, STEPS = 3, 100
TRANSITION = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
MEANS = torch.tensor([-2.0, 0.0, 2.0])


def hmm_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    z, ys = 0, []
    for _ in range(STEPS):
        z = int(torch.multinomial(TRANSITION[z], 1, generator=g))
        ys.append(MEANS[z] + torch.randn((), generator=g))
    return torch.stack(ys)


def hmm(ys):
    transition = ppl.param("transition", TRANSITION.clone(), constraint=dist.constraints.simplex)
    z = 0
    for t in ppl.markov(range(len(ys))):
        z = ppl.sample(f"z_{t}", dist.Categorical(transition[z]), infer={"enumerate": "parallel"})
        ppl.sample(f"y_{t}", dist.Normal(MEANS[z], 1.0), obs=ys[t])


def forward_log_likelihood(ys, transition):
    alpha = torch.log(transition[0]) + torch.distributions.Normal(MEANS, 1.0).log_prob(ys[0])
    for y in ys[1:]:
        alpha = torch.logsumexp(alpha[:, None] + transition.log(), 0)
        alpha = alpha + torch.distributions.Normal(MEANS, 1.0).log_prob(y)
    return torch.logsumexp(alpha, 0)


def empty_guide(ys):
    pass


@pytest.mark.parametrize("objective", [ELBO(), IWAE(4)], ids=["elbo", "iwae"])
def test_hmm_of_100_steps_equals_the_forward_algorithm(objective):
    ys = hmm_data()
    vi = VI(hmm, empty_guide, objective)
    loss = vi.differentiable_loss(ys)
    with vi.param_scope():
        transition = pyro.param("transition")
        exact = forward_log_likelihood(ys, transition)
        (ours,) = torch.autograd.grad(loss, [pyro.get_param_store()._params["transition"]])
        (theirs,) = torch.autograd.grad(-exact, [pyro.get_param_store()._params["transition"]])
    assert float(-loss) == pytest.approx(float(exact), rel=1e-5)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_importance_sums_model_enumerated_sites_out():
    ys = hmm_data(seed=1)[:30]
    result = Importance(hmm, num_particles=10).run(ys)
    # no latent site is left to sample: every weight is the exact likelihood
    exact = float(forward_log_likelihood(ys, TRANSITION))
    assert result.log_evidence == pytest.approx(exact, rel=1e-5)


def test_enumerating_a_continuous_site_is_named():
    def bad(x):
        ppl.sample("z", dist.Normal(0.0, 1.0), infer={"enumerate": "parallel"})

    with pytest.raises(SiteError, match="site 'z' is marked .* Normal has no finite support"):
        VI(bad, empty_guide).step(torch.zeros(1))


def test_a_long_chain_without_markov_is_named():
    def chain(ys):
        z = 0
        for t in range(len(ys)):
            z = ppl.sample(f"z_{t}", dist.Categorical(TRANSITION[z]), infer={"enumerate": "parallel"})
            ppl.sample(f"y_{t}", dist.Normal(MEANS[z], 1.0), obs=ys[t])

    with pytest.raises(SiteError, match="site 'z_50': 60 enumerated sites outside ppl.markov"):
        VI(chain, empty_guide).step(hmm_data()[:60])


def markov_chain(ys, history):
    z = 0
    for t in ppl.markov(range(len(ys)), history=history):
        z = ppl.sample(f"z_{t}", dist.Categorical(TRANSITION[z]), infer={"enumerate": "parallel"})
        ppl.sample(f"y_{t}", dist.Normal(MEANS[z], 1.0), obs=ys[t])


def test_a_markov_window_longer_than_the_chain_is_named():
    ys = hmm_data()[:2]
    with pytest.raises(SiteError, match="site 'z_0' is in ppl.markov\\(history=3\\) over a chain of 2 steps"):
        VI(markov_chain, lambda ys, history: None).step(ys, 3)
    # as long as the chain (a one-step chain of order 1 among them): the forward algorithm
    for steps in (1, 2):
        loss = VI(markov_chain, lambda ys, history: None).loss(ys[:steps], steps)
        assert loss == pytest.approx(-float(forward_log_likelihood(ys[:steps], TRANSITION)), rel=1e-5)


def viterbi(ys, transition):
    score = torch.log(transition[0]) + torch.distributions.Normal(MEANS, 1.0).log_prob(ys[0])
    back = []
    for y in ys[1:]:
        total = score[:, None] + transition.log()
        score, best = total.max(0)
        score = score + torch.distributions.Normal(MEANS, 1.0).log_prob(y)
        back.append(best)
    path = [int(score.argmax())]
    for best in reversed(back):
        path.append(int(best[path[-1]]))
    return path[::-1]


def test_infer_discrete_map_is_the_viterbi_path_and_samples_follow_the_posterior():
    ys = hmm_data()
    vi = VI(hmm, empty_guide, ELBO(), rng_seed=0)
    best = vi.infer_discrete(ys, temperature=0)
    assert [int(best[f"z_{t}"]) for t in range(STEPS)] == viterbi(ys, TRANSITION)
    # samples: the first state's frequency over 400 draws against its exact marginal
    # (forward-backward on the first step), within 4 binomial standard errors
    draws = torch.tensor([int(vi.infer_discrete(ys[:5])["z_0"]) for _ in range(400)])
    beta = torch.zeros(STATES)
    for y in reversed(ys[1:5]):
        beta = torch.logsumexp(TRANSITION.log() + (torch.distributions.Normal(MEANS, 1.0).log_prob(y)
                                                   + beta)[None, :], 1)
    first = TRANSITION[0].log() + torch.distributions.Normal(MEANS, 1.0).log_prob(ys[0]) + beta
    marginal = torch.softmax(first, 0)
    for k in range(STATES):
        p = float(marginal[k])
        assert abs(float((draws == k).float().mean()) - p) < 4 * (p * (1 - p) / 400) ** 0.5 + 1e-3


def test_sampled_enumeration_is_refused_by_name():
    def sampled(ys):
        z = ppl.sample("z", dist.Categorical(torch.ones(3) / 3),
                       infer={"enumerate": "parallel", "num_samples": 2})
        ppl.sample("y", dist.Normal(MEANS[z], 1.0), obs=ys[0])

    with pytest.raises(NotImplementedError, match="site 'z': infer=\\{'num_samples'"):
        VI(sampled, empty_guide).step(hmm_data())

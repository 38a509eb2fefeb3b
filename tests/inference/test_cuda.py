"""The cuda paths: run where a GPU is present, skip cleanly where it is not."""

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Adam, Importance

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_vi_and_importance_on_cuda():
    device = torch.device("cuda")
    x = torch.tensor([0.8, 1.9, 1.2, 0.4, 1.6], device=device)

    def model(x):
        mu = ppl.sample("mu", dist.Normal(torch.tensor(0.0, device=device), 1.0))
        with ppl.plate("data", len(x), device=device):
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        loc = ppl.param("loc", torch.tensor(0.0, device=device))
        scale = ppl.param("scale", torch.tensor(1.0, device=device),
                          constraint=dist.constraints.positive)
        ppl.sample("mu", dist.Normal(loc, scale))

    for objective in (ELBO(4), IWAE(8)):
        vi = VI(model, guide, objective, Adam(lr=0.05))
        vi.run(x, num_steps=300, progress=False)
        assert vi.params["loc"].device.type == "cuda"
        assert abs(float(vi.params["loc"]) - float(x.sum()) / 6) < 0.2
    result = Importance(model, guide, num_particles=10000, param_values=vi.params).run(x)
    assert result.log_weights.device.type == "cuda"
    n = len(x)
    exact = torch.distributions.MultivariateNormal(
        torch.zeros(n, device=device), torch.eye(n, device=device) + 1.0).log_prob(x)
    assert abs(result.log_evidence - float(exact)) < 4 * result.log_evidence_stderr + 1e-3
    samples = vi.posterior(x, num_samples=10)
    assert samples["mu"].device.type == "cuda"


def test_checkpoint_on_cuda(tmp_path):
    device = torch.device("cuda")
    net = torch.nn.Linear(3, 2).to(device)
    data = torch.randn(8, 3, device=device)

    def model(x):
        ppl.module("net", net)
        with ppl.plate("data", len(x), device=device):
            z = ppl.sample("z", dist.Normal(torch.zeros(2, device=device), 1.0).to_event(1))
            ppl.sample("x", dist.Normal(net(x) + z, 1.0).to_event(1), obs=torch.zeros(8, 2, device=device))

    def guide(x):
        loc = ppl.param("zloc", torch.zeros(8, 2, device=device))
        with ppl.plate("data", len(x), device=device):
            ppl.sample("z", dist.Normal(loc, 1.0).to_event(1))

    vi = VI(model, guide, ELBO(2), Adam(lr=0.01))
    vi.run(data, num_steps=5, progress=False)
    vi.save(tmp_path / "c.pt")
    after = vi.run(data, num_steps=3, progress=False)
    vi.load(tmp_path / "c.pt")
    assert vi.run(data, num_steps=3, progress=False) == after


def test_counterfactual_noise_on_cuda():
    # every family's noise is drawn on the device of its parameters, and the Categorical
    # counterfactual of test_noise_oracles.py gives the rejection oracle's answer there
    import inference

    device = torch.device("cuda")
    table = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]], device=device)

    def model():
        x = ppl.sample("x", dist.Bernoulli(torch.tensor(0.5, device=device)))
        ppl.sample("n", dist.Normal(x, 2.0))
        ppl.sample("e", dist.Exponential(x + 1))
        return ppl.sample("c", dist.Categorical(table[x.long()]))

    trace = ppl.trace(ppl.counterfactual_worlds(model, {}, {"x": torch.tensor(0.0, device=device)}))()
    for name in ("x", "n", "e", "c"):
        assert trace.sites[f"{name}__noise"].value.device.type == "cuda", name
    answer = inference.counterfactual(model, {"x": torch.tensor(1.0, device=device),
                                              "c": torch.tensor(2, device=device)},
                                      {"x": torch.tensor(0.0, device=device)}, "c",
                                      method="importance", num_particles=40_000)
    # [0.648, 0.209, 0.143] by rejection sampling of explicit Gumbel noise (10^6 draws)
    for j, p in enumerate((0.648, 0.209, 0.143)):
        assert abs(answer.probability(j) - p) < 0.015

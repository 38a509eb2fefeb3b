"""``VI(compile=True)`` on torch: the compiled step reproduces the eager step (same seed,
same draws, to float rounding), with the whole step in compiled graphs (no graph break at
Pyro's sample sites), recompiling for a new batch shape."""

import pytest
import torch
import torch._dynamo

import ppl
import ppl.distributions as dist
from inference import VI, Adam

torch_compile = pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile missing")


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(6, 8)
        self.loc, self.scale = torch.nn.Linear(8, 2), torch.nn.Linear(8, 2)

    def forward(self, x):
        h = torch.tanh(self.hidden(x))
        return self.loc(h), torch.nn.functional.softplus(self.scale(h)) + 1e-3


def fresh_networks():
    torch.manual_seed(0)
    return Encoder(), torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6))


def vae(encoder, decoder):
    def model(x):
        ppl.module("decoder", decoder)
        noise = ppl.param("noise", torch.tensor(0.5), constraint=dist.constraints.positive)
        with ppl.plate("data", x.shape[0]):
            z = ppl.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            ppl.sample("x", dist.Normal(decoder(z), noise).to_event(1), obs=x)

    def guide(x):
        ppl.module("encoder", encoder)
        with ppl.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            ppl.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def fit(compile, batches):
    model, guide = vae(*fresh_networks())
    vi = VI(model, guide, optimizer=Adam(0.05), rng_seed=1, compile=compile)
    losses = [vi.step(x) for x in batches]
    return vi, losses


@torch_compile
def test_a_compiled_step_reproduces_the_eager_step_without_graph_breaks():
    data = torch.randn(16, 6, generator=torch.Generator().manual_seed(3))
    batches = [data[:8], data[8:], data[:8], data[:5]]  # a new batch size: compiled again
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, compiled_losses = fit(True, batches)
    assert compiled._compiled_loss.failure is None and compiled._compiled_loss.compile_seconds > 0
    assert not torch._dynamo.utils.counters["graph_break"]  # each step whole, in compiled graphs
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the new shape compiled
    eager, eager_losses = fit(False, batches)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5)
    for name, value in eager.params.items():
        assert torch.allclose(compiled.params[name], value, rtol=1e-4, atol=1e-5), name


@torch_compile
def test_a_program_error_is_raised_as_eagerly_not_taken_for_a_compiler_failure():
    def model(x, broken):
        if broken:  # a Python argument: one compiled graph per value
            raise ValueError("the program's own error")
        loc = ppl.param("loc", torch.tensor(0.0))
        ppl.sample("x", dist.Normal(loc, 1.0), obs=x)

    def guide(x, broken):
        pass

    vi = VI(model, guide, compile=True)
    vi.step(torch.tensor(1.0), False)
    with pytest.raises(ValueError, match="the program's own error"):
        vi.step(torch.tensor(1.0), True)
    vi.step(torch.tensor(1.0), False)
    assert vi._compiled_loss.failure is None and vi.step_count == 2


@torch_compile
def test_compiling_that_would_not_pay_falls_back_to_eager_with_a_warning():
    """A graph break at the program's Python control flow on a tensor (each break pays
    Python again), and a program whose structure changes every step (recompiling each
    time, as Pyro's enumeration does): both run eagerly after one warning, with the eager
    losses."""
    def branching(x):
        loc = ppl.param("loc", torch.tensor(0.0))
        if loc > 0:  # a tensor turned into a Python bool
            loc = loc * 2
        ppl.sample("x", dist.Normal(loc, 1.0), obs=x)

    steps = {"count": 0}

    def changing(x):
        steps["count"] += 1
        loc = ppl.param("loc", torch.tensor(0.0))
        ppl.sample(f"x_{steps['count']}", dist.Normal(loc, 1.0), obs=x)  # a new site each step

    def guide(x):
        pass

    for model, why in ((branching, "break into several compiled graphs .*Data-dependent branching"),
                       (changing, "compiled again")):
        vi = VI(model, guide, compile=True, rng_seed=0)
        with pytest.warns(RuntimeWarning, match=f"compile=True: .*{why}.*running eagerly"):
            for _ in range(4):
                vi.step(torch.tensor(1.0))
        assert vi._compiled_loss.failure is not None


@torch_compile
def test_a_compiler_failure_warns_and_runs_eagerly(monkeypatch):
    import ppl.backends.torch.compiled_loss as compiled_loss

    def failing_compiler(fn, **options):  # as Inductor fails without a C++ compiler
        def call(*args, **kwargs):
            raise torch._dynamo.exc.InternalTorchDynamoError("no C++ compiler found")
        return call

    monkeypatch.setattr(compiled_loss.torch, "compile", failing_compiler)
    batches = [torch.randn(4, 6, generator=torch.Generator().manual_seed(5))] * 2
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C.. compiler found.*eagerly"):
        fallen, fallen_losses = fit(True, batches)
    _, eager_losses = fit(False, batches)
    assert fallen_losses == eager_losses  # the eager step itself, from the first step on


def test_compile_must_be_a_boolean():
    with pytest.raises(TypeError, match="compile must be True or False"):
        VI(lambda: None, lambda: None, compile="yes")

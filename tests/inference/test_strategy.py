"""The strategy base: a new strategy writes its step (and its estimate) and gets the rest,
run with history, its own parameters and random stream, checkpoints, non-finite reports."""

import pyro
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference.strategy import Strategy, entering
from ppl.errors import CheckpointError, NonFiniteError, UnsupportedError


def model():
    return ppl.sample("z", dist.Normal(ppl.param("shift", torch.tensor(1.0)), 1.0))


class PriorMean(Strategy):
    """Averages draws of the model's return value: a step is one draw."""

    def __init__(self, model, rng_seed=None):
        super().__init__(model, rng_seed)
        self.total = 0.0

    @entering
    def step(self):
        value = float(self.backend.run(self.model).return_value.detach())
        if value != value:
            raise self.non_finite("draw is NaN", [], "no site")
        self.total += value
        self.step_count += 1
        self.history.append(value)
        return value

    def evaluate(self):
        return self.total / self.step_count

    def state_dict(self):
        return {**super().state_dict(), "total": self.total, "rng": torch.get_rng_state()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.total = state["total"]
        torch.set_rng_state(state["rng"])


def test_a_new_strategy_gets_run_seeding_and_checkpoints(tmp_path):
    a = PriorMean(model, rng_seed=3)
    history = a.run(num_steps=50, progress=False)
    assert history == a.history and a.step_count == 50
    # the mean of 50 draws of N(1, 1): within 4 standard errors (4 / sqrt(50) = 0.57)
    assert abs(a.evaluate() - 1.0) < 4 / 50 ** 0.5
    # its parameters are its own (Pyro's global store is untouched); the same seed, the same draws
    assert "shift" not in pyro.get_param_store()
    assert PriorMean(model, rng_seed=3).run(num_steps=50, progress=False) == history
    # a checkpoint resumes exactly, into a fresh instance
    a.save(tmp_path / "prior.ckpt")
    continued = a.run(num_steps=5, progress=False)
    b = PriorMean(model, rng_seed=99)
    b.load(tmp_path / "prior.ckpt")
    assert b.run(num_steps=5, progress=False) == continued and b.step_count == 55
    with pytest.raises(CheckpointError, match="written by a PriorMean, not a VI"):
        from inference import VI

        VI(model, model).load(tmp_path / "prior.ckpt")


def test_the_base_names_what_a_strategy_does_not_provide():
    strategy = PriorMean(model)
    with pytest.raises(UnsupportedError, match="PriorMean.posterior"):
        strategy.posterior()
    with pytest.raises(ValueError, match="rng_seed must be an integer"):
        PriorMean(model, rng_seed="seven")
    error = strategy.non_finite("loss is nan", [], "the objective overflowed")
    assert isinstance(error, NonFiniteError) and str(error) == "loss is nan: the objective overflowed"


def test_progress_written_to_a_log_is_ten_plain_lines(capsys):
    # a bar written to a file redraws as a line per update (about 110 per 1,000-step fit);
    # to a log a run writes one line per tenth: step, share and the mean loss since the last
    from inference import VI

    def guide():
        ppl.sample("z", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0))

    vi = VI(model, guide, rng_seed=0)
    losses = vi.run(num_steps=1000)  # progress on by default; pytest's stderr is not a terminal
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10, lines
    assert lines[0].startswith("ELBO: step 100/1000 (10%), loss ")
    assert lines[-1].startswith("ELBO: step 1000/1000 (100%), loss ")
    last = float(lines[-1].rsplit(" ", 1)[-1])
    assert last == pytest.approx(sum(losses[900:]) / 100, rel=1e-3)


def test_a_pyro_style_read_of_a_strategy_s_parameter_says_where_it_is():
    # today: a bare KeyError 'loc' (Pyro's tutorials read a fit with pyro.param("loc"))
    from inference import VI

    def guide():
        ppl.sample("z", dist.Normal(ppl.param("loc", torch.tensor(0.5)), 1.0))

    vi = VI(model, guide, rng_seed=0)
    vi.run(num_steps=2, progress=False)
    with pytest.raises(KeyError, match=r"'loc': this parameter belongs to a strategy.*vi.params\['loc'\].*"
                                       r"with vi.param_scope\(\)"):
        pyro.param("loc")
    with pytest.raises(KeyError) as unknown:  # a name no strategy owns: Pyro's own error
        pyro.param("never_made")
    assert "strategy" not in str(unknown.value)
    with vi.param_scope():
        assert float(pyro.param("loc").detach()) == float(vi.params["loc"])

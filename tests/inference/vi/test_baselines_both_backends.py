"""Score-function baselines are state threaded through each step (compiled by ``jax.jit`` on
JAX): the running average and the learned baseline follow their recursions on both backends.

With a guide and a model that have no parameters, each step's learning signal at the
score-function site is the per-particle log-weight, whose mean is the step's bound, i.e.
minus the loss in ``history``; so both baselines are known exactly from the history."""

import pytest

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, SGD
from inference.vi import Score
from inference.vi.baselines import LearnedBaseline, RunningBaseline

DECAY, ETA, STEPS = 0.9, 0.05, 12


def model():
    ops = ppl.get_backend().ops
    c = ppl.sample("c", dist.Categorical(probs=ops.asarray([0.2, 0.5, 0.3])))
    ppl.sample("x", dist.Normal(c * 1.0, 1.0), obs=ops.asarray(0.7))


def guide():
    ops = ppl.get_backend().ops
    ppl.sample("c", dist.Categorical(probs=ops.asarray([0.4, 0.4, 0.2])))


def test_the_running_baseline_is_the_average_of_the_past_signals(on_backend):
    vi = VI(model, guide, ELBO(4), estimators={"c": Score("running", decay=DECAY)}, rng_seed=0)
    for _ in range(STEPS):
        vi.step()
    expected = None
    for loss in vi.history:
        signal = -loss
        expected = signal if expected is None else DECAY * expected + (1 - DECAY) * signal
    assert float(vi.state_dict()["baselines"]["c"]) == pytest.approx(expected, rel=1e-5)
    assert max(vi.history) - min(vi.history) > 0.1  # fresh draws each step: the recursion is not trivial


def test_the_learned_baseline_follows_its_gradient_steps(on_backend):
    """SGD on mean((s - b)^2): b <- b + 2 eta (mean s - b), from 0."""
    vi = VI(model, guide, ELBO(4), SGD(ETA), estimators={"c": Score("learned")}, rng_seed=0)
    for _ in range(STEPS):
        vi.step()
    expected = 0.0
    for loss in vi.history:
        expected += 2 * ETA * (-loss - expected)
    assert float(vi.params["_baseline.c"]) == pytest.approx(expected, rel=1e-5)


def test_a_running_baseline_resumes_from_a_checkpoint(on_backend, tmp_path):
    vi = VI(model, guide, ELBO(4), estimators={"c": Score("running", decay=DECAY)}, rng_seed=0)
    for _ in range(3):
        vi.step()
    vi.save(tmp_path / "ckpt")
    resumed = VI(model, guide, ELBO(4), estimators={"c": Score("running", decay=DECAY)}, rng_seed=5)
    resumed.load(tmp_path / "ckpt")
    vi.step()
    resumed.step()
    assert resumed.history[-1] == pytest.approx(vi.history[-1], rel=1e-6)
    assert float(resumed.state_dict()["baselines"]["c"]) == pytest.approx(
        float(vi.state_dict()["baselines"]["c"]), rel=1e-6)


def test_a_baseline_reads_its_state_and_returns_the_next(on_backend):
    ops = ppl.get_backend().ops
    signal = ops.asarray([[1.0, 3.0], [5.0, 7.0]])
    first = RunningBaseline(ops, DECAY, ops.asarray(float("nan")))
    assert float(first(signal)) == 4.0 and float(first.new_state) == 4.0  # no past: the mean itself
    later = RunningBaseline(ops, DECAY, ops.asarray(2.0))
    assert float(later(signal)) == 2.0
    assert float(later.new_state) == pytest.approx(DECAY * 2.0 + (1 - DECAY) * 4.0)
    learned = LearnedBaseline(ops, ops.asarray(1.5))
    assert float(learned(signal)) == 1.5
    assert float(learned.loss(signal)) == pytest.approx(((1 - 1.5) ** 2 + 1.5 ** 2 + 3.5 ** 2 + 5.5 ** 2) / 4)

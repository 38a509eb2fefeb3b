"""The library's contract: strategies own their parameters and random streams, faults leave
no trace, checkpoints are safe and exact, and both backends answer the same questions.
Each test reproduces one fault of the code before the contract ("today:" says what that
code did). Seeds are fixed everywhere, so every outcome is deterministic."""

import functools
import os
import pickle
import threading

import pyro
import pytest
import torch
from pyro.poutine import runtime

import inference
import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Adam, GFlowNetEM, Importance
from models import normal_normal_model
from ppl import errors
from ppl.errors import CheckpointError, UnsupportedError


@pytest.fixture(autouse=True)
def clean_effect_stack():
    """A test that leaks handlers (the faults below, on broken code) must not break the next."""
    dims = list(runtime._DIM_ALLOCATOR._stack)
    yield
    del runtime._PYRO_STACK[:]
    runtime._DIM_ALLOCATOR._stack[:] = dims


model = functools.partial(normal_normal_model, prior_scale=10.0)  # mu ~ N(0, 10^2), x_i ~ N(mu, 1)


def guide(x):
    ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 0.1))


# posterior means +-2.9985 (prior sd 10, 20 points, unit noise); a 200-step Adam(0.05) fit
# lands within ~0.05 of them, so "> 2" / "< -2" is slack for noise but not for the other fit
XA, XB = (c + 0.1 * torch.randn(20, generator=torch.Generator().manual_seed(s))
          for c, s in ((3.0, 1), (-3.0, 2)))


def _fit(x, steps=200, **kw):
    vi = VI(model, guide, ELBO(), Adam(0.05), **kw)
    vi.run(x, num_steps=steps, progress=False)
    return vi


# --------------------------------------------------------------------------- errors
# today: no ppl.errors module. Each class is a PPLError AND the built-in it replaces (so that
# "except ValueError" still catches it): two assertions, since issubclass(X, (A, B)) is "or"
BUILT_IN = {"PPLError": Exception, "SiteError": ValueError, "ShapeError": ValueError,
            "UnsupportedError": NotImplementedError, "NonFiniteError": FloatingPointError,
            "CheckpointError": ValueError, "ResourceError": MemoryError}


def test_error_classes():
    assert ppl.errors is errors and inference.NonFiniteError is errors.NonFiniteError
    classes = {name: value for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, BaseException)}
    assert set(classes) == set(BUILT_IN) == set(errors.__all__)  # a new class is listed here
    for name, cls in classes.items():
        assert issubclass(cls, errors.PPLError), name
        assert issubclass(cls, BUILT_IN[name]), name
    assert issubclass(errors.ShapeError, errors.SiteError)


# ------------------------------------------------------------------------ ownership
# today: both share Pyro's global 'loc': a.params['loc'] reads -2.70 after b's fit
def test_two_vi_keep_their_own_fits():
    a = _fit(XA)
    b = _fit(XB)
    assert float(a.params["loc"]) > 2.0 and float(b.params["loc"]) < -2.0


# today: the global param store ends up holding 'loc' (and VI has no param_scope)
def test_params_live_in_the_strategy_and_param_scope_exposes_them():
    pyro.param("unrelated", torch.tensor(7.0))
    a = _fit(XA)
    assert set(pyro.get_param_store().keys()) == {"unrelated"}
    with a.param_scope():
        assert torch.equal(ppl.param("loc").detach(), a.params["loc"])
        assert torch.equal(pyro.param("loc").detach(), a.params["loc"])
        assert torch.equal(ppl.trace(guide)(XA).params["loc"].detach(), a.params["loc"])
    assert set(pyro.get_param_store().keys()) == {"unrelated"}
    assert float(pyro.param("unrelated").detach()) == 7.0


# -------------------------------------------------------------------------- seeding
def _seeded_run(kind, seed):
    """The numbers one short run of strategy ``kind`` with ``rng_seed=seed`` produces."""
    if kind == "VI":
        vi = _fit(XA, steps=20, rng_seed=seed)
        return vi.history, float(vi.params["loc"])
    if kind == "Importance":
        return Importance(model, num_particles=100, rng_seed=seed).run(XA).log_evidence

    def mixture(x):
        with ppl.plate("data", len(x)):
            c = ppl.sample("c", dist.Categorical(torch.ones(2) / 2))
            ppl.sample("x", dist.Normal(torch.tensor([-2.0, 2.0])[c], 1.0), obs=x)

    em = GFlowNetEM(mixture, hidden=16, rng_seed=seed)
    return em.run(torch.tensor([-2.0, 2.1]), num_steps=10, progress=False)


# today: VI and GFlowNetEM reject rng_seed (TypeError); Importance ignores it on torch
# (log evidence -22.42 vs -21.85 once torch.rand has advanced the global generator)
@pytest.mark.parametrize("kind", ["VI", "Importance", "GFlowNetEM"])
def test_rng_seed_gives_a_private_reproducible_stream(kind):
    state = torch.get_rng_state()
    first = _seeded_run(kind, 1)
    advanced = not torch.equal(torch.get_rng_state(), state)
    torch.rand(7)
    assert _seeded_run(kind, 1) == first
    assert not advanced, "the strategy advanced torch's global generator"
    assert _seeded_run(kind, 2) != first


# today: ppl.seed reseeds torch and leaves it so: torch.rand(3) after the block differs
def test_seed_handler_restores_the_global_generator():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with ppl.seed(rng_seed=1):
        inside = torch.rand(2)
    assert torch.equal(torch.rand(3), expected)
    with ppl.seed(rng_seed=1):
        assert torch.equal(torch.rand(2), inside)
    torch.manual_seed(5)
    ppl.seed(lambda: torch.rand(2), 1)()
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- faults
def _unrelated_runs():
    """An IWAE step and an importance estimate, each seeded the same way every call."""
    pyro.clear_param_store()  # a no-op once parameters are owned by the strategy
    torch.manual_seed(11)
    iwae = VI(model, guide, IWAE(5)).step(XA)
    torch.manual_seed(12)
    return iwae, Importance(model, num_particles=100, rng_seed=0).run(XA).log_evidence


# today: evaluate raises a RuntimeError inside the particle plate's __enter__ and leaves
# '_particles' allocated (allocator stack [None, '_particles']); every later vectorised run
# then fails with "duplicate plate '_particles'"
def test_bad_particle_count_leaves_no_trace():
    before = _unrelated_runs()
    dims = list(runtime._DIM_ALLOCATOR._stack)
    raised = pytest.raises(Exception, VI(model, guide).evaluate, XA, num_particles=-5).value
    assert not runtime._PYRO_STACK and runtime._DIM_ALLOCATOR._stack == dims
    assert _unrelated_runs() == before
    assert isinstance(raised, ValueError), repr(raised)


# today: passes (Pyro's Messenger.__exit__ unwinds the stack on exceptions); a guard
def test_model_raising_midway_leaves_no_trace():
    failing = []

    def flaky(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
        with ppl.plate("data", len(x)):
            if failing:
                raise RuntimeError("boom")
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    before = _unrelated_runs()
    dims = list(runtime._DIM_ALLOCATOR._stack)
    vi, imp = VI(flaky, guide), Importance(flaky, num_particles=10)
    vi.step(XA)  # set up and stepped once, so the fault comes in a real step / run
    imp.run(XA)
    failing.append(True)
    for run in (lambda: vi.step(XA), lambda: imp.run(XA)):
        with pytest.raises(RuntimeError, match="boom"):
            run()
        assert not runtime._PYRO_STACK and runtime._DIM_ALLOCATOR._stack == dims
    assert _unrelated_runs() == before


# today: step_count == len(history) == 1 while the optimiser's state says step 2
def test_interrupt_after_the_optimiser_step_keeps_counts_consistent(monkeypatch):
    vi = VI(model, guide, ELBO(), Adam(0.05))
    vi.step(XA)
    opt = vi.engine.optimizer
    original = opt.step

    def interrupted(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(opt, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vi.step(XA)
    assert int(opt.state[opt.param_groups[0]["params"][0]]["step"]) == 2
    assert vi.step_count == 2 and len(vi.history) == 2


# -------------------------------------------------------------------------- threads
# today: the threads share Pyro's effect stack and param store: "This Messenger is not on
# the bottom of the stack", "sample site 'mu' appears twice in one run". Both threads must
# run to the end: a strategy that refuses to run beside another (even by a PPLError) fails
def test_two_threads_keep_their_own_fits():
    jobs = {"a": (XA, 1), "b": (XB, 2)}

    def in_threads(seeded):
        results, failures = {}, []

        def work(name, x, seed):
            try:
                results[name] = _fit(x, **({"rng_seed": seed} if seeded else {})).params["loc"]
            except BaseException as error:  # noqa: BLE001 -- reported below
                failures.append(error)

        threads = [threading.Thread(target=work, args=(n, *job)) for n, job in jobs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        assert not runtime._PYRO_STACK
        assert set(results) == {"a", "b"}
        assert float(results["a"]) > 2.0 and float(results["b"]) < -2.0  # see XA, XB
        return results

    for _ in range(3):  # repeats give the race a chance to show
        in_threads(seeded=False)
    reference = {n: _fit(x, rng_seed=seed).params["loc"] for n, (x, seed) in jobs.items()}
    for _ in range(3):
        results = in_threads(seeded=True)
        for name in jobs:  # exactly the sequential fit
            assert torch.equal(results[name], reference[name]), name
    assert torch.equal(_fit(XA, rng_seed=1).params["loc"], reference["a"])


# ---------------------------------------------------------------------- checkpoints
RAN = []  # unpickling a _Payload appends to it: evidence that a load ran code


def _mark(tag):
    RAN.append(tag)


class _Payload:
    def __reduce__(self):
        return (_mark, ("payload ran",))


def _state(vi):
    """What a refused load must leave alone: parameters, step count, history."""
    return {n: v.tolist() for n, v in vi.params.items()}, vi.step_count, list(vi.history)


# today: both loads are accepted (no error): the other guide's 'loc' is added to the global
# store, the scalar 'loc' is broadcast into the 2-vector; step_count and history overwritten
@pytest.mark.parametrize("target", ["other parameter names", "vector loc"])
def test_load_of_a_mismatched_checkpoint_is_refused(tmp_path, target):
    def centre_guide(x):
        ppl.sample("mu", dist.Normal(ppl.param("centre", torch.tensor(1.0)), 0.1))

    def vector_model(x):
        mu = ppl.sample("mu", dist.Normal(torch.zeros(2), 10.0).to_event(1))
        with ppl.plate("data", len(x)):
            ppl.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)

    def vector_guide(x):
        ppl.sample("mu", dist.Normal(ppl.param("loc", torch.zeros(2)), 0.1).to_event(1))

    _fit(XA, steps=3).save(tmp_path / "scalar_loc.pt")
    pyro.clear_param_store()  # a no-op once parameters are owned by the strategy
    if target == "other parameter names":
        vi = VI(model, centre_guide, ELBO(), Adam(0.05))
        vi.run(XA, num_steps=3, progress=False)
    else:
        vi = VI(vector_model, vector_guide, ELBO(), Adam(0.05))
        vi.run(torch.ones(5, 2), num_steps=3, progress=False)
    before = _state(vi)
    error = pytest.raises(Exception, vi.load, tmp_path / "scalar_loc.pt").value
    assert isinstance(error, CheckpointError), repr(error)
    # the first difference, with each side where it belongs
    expected = {"other parameter names": "parameter 'centre' of this strategy is not in the "
                                         "checkpoint (it has ['loc'])",
                "vector loc": "parameter 'loc' has shape () in the checkpoint and (2,) here"}[target]
    assert str(error).endswith(expected), str(error)
    assert _state(vi) == before


# today: torch.load(weights_only=False) unpickles the payloads, running _mark, and its own
# errors escape for the others (EOFError, OSError, UnpicklingError)
@pytest.mark.parametrize("content", ["torch.save payload", "pickle payload", "empty",
                                     "truncated", "random bytes", "text"])
def test_bad_checkpoint_files_are_refused_without_running_code(tmp_path, content):
    vi = _fit(XA, steps=3)
    vi.save(tmp_path / "good.pt")
    good = (tmp_path / "good.pt").read_bytes()
    payload = {"engine": _Payload(), "step": 0, "history": [], "baselines": {}}
    if content == "torch.save payload":
        torch.save(payload, tmp_path / "bad.pt")
    else:
        (tmp_path / "bad.pt").write_bytes({
            "pickle payload": pickle.dumps(payload), "empty": b"",
            "truncated": good[: len(good) // 2], "text": b"epoch,loss\n1,0.5\n",
            "random bytes": bytes(torch.randint(0, 256, (512,), dtype=torch.uint8).tolist()),
        }[content])
    before = _state(vi)
    RAN.clear()
    error = pytest.raises(Exception, vi.load, tmp_path / "bad.pt").value
    assert RAN == [], "loading ran code from the file"
    assert isinstance(error, CheckpointError), repr(error)
    assert _state(vi) == before


# today: RuntimeError "Parent directory ... does not exist" (for both)
@pytest.mark.parametrize("parent", ["missing", "a_file"])
def test_save_to_an_unwritable_place_raises_checkpoint_error(tmp_path, parent):
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(CheckpointError):
        _fit(XA, steps=2).save(tmp_path / parent / "ckpt.pt")


# today: torch.save truncates the file before writing, so a failure half-way leaves 592
# bytes that fail to load ("PytorchStreamReader failed locating file data.pkl")
def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    vi = _fit(XA, steps=5)
    vi.save(path)
    saved = _state(vi)
    vi.run(XA, num_steps=5, progress=False)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m:  # whichever the writer uses, it fails after writing began
        for owner, name in ((os, "replace"), (os, "rename"), (torch.serialization, "_save")):
            m.setattr(owner, name, fail)
        with pytest.raises((OSError, CheckpointError)):
            vi.save(path)
    vi.load(path)
    assert _state(vi) == saved


# today: resumed.load writes into the global store, so the original's 'loc' changes
def test_resume_on_torch_is_exact_and_leaves_the_original_alone(tmp_path):
    vi = _fit(XA, steps=10)
    vi.save(tmp_path / "ckpt.pt")
    continued = vi.run(XA, num_steps=5, progress=False)
    original = vi.params["loc"].clone()

    def guide_from_five(x):
        ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(5.0)), 0.1))

    resumed = VI(model, guide_from_five, ELBO(), Adam(0.05))
    resumed.load(tmp_path / "ckpt.pt")
    assert torch.equal(vi.params["loc"], original)
    assert resumed.run(XA, num_steps=5, progress=False) == continued
    assert resumed.step_count == 15 and len(resumed.history) == 15


# today: KeyError: 'loc' on the first step after the load
def test_resume_on_jax_is_exact(tmp_path):
    pytest.importorskip("numpyro")
    with ppl.backend("jax"):
        import jax.numpy as jnp

        x = jnp.asarray(XA.numpy())

        def jmodel(x):
            mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
            with ppl.plate("data", x.shape[0]):
                ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

        def make(init):
            def jguide(x):
                ppl.sample("mu", dist.Normal(ppl.param("loc", jnp.asarray(init)), 0.1))
            return VI(jmodel, jguide, ELBO(), Adam(0.05))

        vi = make(0.0)
        vi.run(x, num_steps=10, progress=False)
        vi.save(tmp_path / "ckpt")
        continued = vi.run(x, num_steps=5, progress=False)
        resumed = make(5.0)
        resumed.load(tmp_path / "ckpt")
        assert resumed.run(x, num_steps=5, progress=False) == continued
        assert resumed.step_count == 15 and len(resumed.history) == 15


# ------------------------------------------------------------------------- backends
def _backdoor():
    z = ppl.sample("Z", dist.Bernoulli(0.4))
    x = ppl.sample("X", dist.Bernoulli(0.2 + 0.6 * z))
    return ppl.sample("Y", dist.Bernoulli(0.1 + 0.3 * x + 0.5 * z))


# before: on JAX, exact gave 0.432 (the intervention was not applied) and importance raised a
# TypeError (a torch op on a JAX array); then JAX refused each method by name. Now both
# backends answer P(Y=1 | do(X=1)) = 0.1 + 0.3 + 0.5 * 0.4 = 0.6 (P(Y=1) without the
# intervention is 0.432, the answer the first JAX run gave).
@pytest.mark.parametrize("method", ["exact", "importance", "auto"])
def test_interventional_is_the_closed_form_on_both_backends(on_backend, method):
    torch.manual_seed(0)
    est = inference.interventional(_backdoor, {"X": 1.0}, "Y", method=method, num_particles=4000)
    if method == "importance":  # prior draws, equal weights: a binomial proportion of 4000
        stderr = (0.6 * 0.4 / 4000) ** 0.5  # 0.0077
        assert est.method == "importance" and abs(est.mean - 0.6) < 4 * stderr, est
        assert est.stderr == pytest.approx((est.mean * (1 - est.mean) / 4000) ** 0.5, rel=1e-4), est
    else:  # every site is discrete: "auto" sums them out exactly too
        assert est.method == "exact" and est.mean == pytest.approx(0.6, abs=1e-6), est


def test_jax_counterfactual_queries_answer_as_torch():
    # before: JAX refused counterfactual worlds by name (they were Pyro Messengers). Now one
    # implementation runs on both backends. Oracle (by hand, monotone coupling of Y's noise):
    # P(Z | X=1, Y=1) is proportional to 0.6 * 0.2 * 0.4 = 0.048 and 0.4 * 0.8 * 0.9 = 0.288;
    # given Y_0 = 1, Y under do(X=0) stays 1 with probability p(Y|X=0, Z) / p(Y|X=1, Z): 0.1 / 0.4
    # and 0.6 / 0.9, so P = (0.048 / 4 + 0.288 * 2 / 3) / 0.336; exact on both, to float32 sums.
    pytest.importorskip("numpyro")
    oracle = (0.048 / 4 + 0.288 * 2 / 3) / 0.336
    for name in ("torch", "jax"):
        with ppl.backend(name):
            answer = inference.counterfactual(_backdoor, {"X": 1.0, "Y": 1.0}, {"X": 0.0}, "Y",
                                              method="auto")
        assert answer.method == "exact" and answer.mean == pytest.approx(oracle, abs=1e-6), name


def test_jax_gflownet_em_with_an_action_space_is_unsupported_by_name():
    pytest.importorskip("numpyro")
    with ppl.backend("jax"):
        with pytest.raises(UnsupportedError, match="GFlowNet-EM with an action_space is not supported"):
            inference.GFlowNetEM(_backdoor, action_space=object())


def test_params_are_copies_and_a_new_parameter_does_not_alias_its_initial_value():
    # today: vi.params shared memory with the trained leaves, and a parameter initialised
    # from them was trained in place, moving the first fit
    def model_():
        ppl.sample("mu", dist.Normal(0.0, 1.0))

    def guide_one():
        ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(3.0)), 0.5))

    first = VI(model_, guide_one, ELBO(), Adam(0.1), rng_seed=0)
    first.run(num_steps=10, progress=False)
    start = first.params["loc"]
    before = float(start)

    def guide_two():
        ppl.sample("mu", dist.Normal(ppl.param("loc2", start), 0.5))

    VI(model_, guide_two, ELBO(), Adam(0.1), rng_seed=1).run(num_steps=50, progress=False)
    assert float(start) == before and float(first.params["loc"]) == before
    snapshot = first.params["loc"]
    first.run(num_steps=5, progress=False)
    assert float(snapshot) == before != float(first.params["loc"])

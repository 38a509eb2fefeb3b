"""What every call of a strategy's verb pays before any program runs: entering the
strategy's own parameter store and random stream (``backend.entered(state)``), and, for a
training step, holding Ctrl-C until the update lands (``deferred_interrupts``).

* ``state_swap``: each guard entered and left 1,000 times per call, side by side with
  Pyro's own way to give code a parameter store of its own (``param_store.scope()``, which
  copies the store in and out) and with the bare minimum written by hand (the three store
  dictionaries swapped in and back: what ``entered`` must do at least).

The target (issue 17): the swap under 2 us per call, on torch.
"""

import pyro
import torch

from inference.interrupts import deferred_interrupts
from ppl.backends.torch.pyro_internals import set_store_dicts, store_dicts
from ppl.backends.torch.state import StrategyState, entered

from .common import Method, markdown_table, paired_ratio, ratio_table, settings, time_interleaved

INNER = 1000  # guards entered per call: one is about a microsecond
TARGET_US = 2.0


def _repeated(guard):
    def call():
        for _ in range(INNER):
            with guard():
                pass
    return call


def _hand_swap(state):
    store = pyro.get_param_store()

    class Swap:
        def __enter__(self):
            self.outer = store_dicts(store)
            set_store_dicts(store, (state.params, state.param_to_name, state.constraints))

        def __exit__(self, *exc):
            set_store_dicts(store, self.outer)

    return Swap


def bench_state_swap(quick=False, device="cpu"):
    s = settings(quick, full=(20, 10, 3), small=(3, 3, 1))
    with pyro.get_param_store().scope():  # a store of a few parameters, as a small model's
        for i in range(4):
            pyro.param(f"p{i}", torch.zeros(3))
        unseeded, seeded = StrategyState(), StrategyState(rng_seed=0)
    store = pyro.get_param_store()
    guards = [("ours: entered(state), torch's global generator", lambda: entered(unseeded)),
              ("ours: entered(state), rng_seed=0 (its own generator)", lambda: entered(seeded)),
              ("ours: deferred_interrupts() (VI.step, GFlowNetEM.step)", deferred_interrupts),
              ("pyro: param_store.scope()", store.scope),
              ("hand-written: the store's dictionaries swapped", _hand_swap(unseeded))]
    methods = [Method(name, _repeated(guard), INNER) for name, guard in guards]
    time_interleaved(methods, s.rounds, s.steps, s.warmup)
    us = [1e6 * m.median / INNER for m in methods]
    verdict = f"{'met' if us[0] < TARGET_US else 'NOT met'} (< {TARGET_US} us)"
    rows = [[m.name, f"{u:.2f}", f"[{1e6 * m.minimum / INNER:.2f}, {1e6 * m.maximum / INNER:.2f}]",
             verdict if i == 0 else ""] for i, (m, u) in enumerate(zip(methods, us))]
    table = markdown_table(["guard", "us per call (median)", "us [min, max]", "target"], rows)
    pyro_m, hand = methods[3], methods[4]
    ratios = ratio_table([("ours unseeded / pyro's scope()", paired_ratio(methods[0], pyro_m), None),
                          ("ours unseeded / hand-written", paired_ratio(methods[0], hand), None),
                          ("ours seeded / hand-written", paired_ratio(methods[1], hand), None)])
    note = (f"Each call enters and leaves a guard {INNER} times; {s.rounds} interleaved rounds x "
            f"{s.steps} calls after {s.warmup} warm-up calls. A seeded state also swaps torch's "
            "CPU generator state: read and written each way, the read a new 5 KB tensor "
            "(torch has no cheaper swap for a CPU generator), about 2 us of its time.")
    return "\n\n".join(["### A strategy's per-call guards (torch)", table, ratios, note])


BENCHMARKS = {"state_swap": bench_state_swap}

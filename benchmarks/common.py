"""Timing helpers shared by the benchmarks: interleaved rounds, medians, ratios, tables.

Every benchmark times all of its methods in the same process and the same rounds: a
round runs each method for ``steps`` calls back to back, and the order of the methods
rotates from round to round, so that drifts of the machine (frequency scaling, other
tenants, allocator state) affect every method alike. Ratios are formed within a round
(paired), and the table reports their median and their spread (min and max over rounds).
"""

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


# --------------------------------------------------------------------------- timing
@dataclass
class Method:
    """One contender: ``call()`` runs one step (or one batch of particles)."""

    name: str
    call: Callable[[], Any]
    units_per_call: float = 1.0  # e.g. particles per call, for throughput
    per_round: list = field(default_factory=list)  # seconds per call, one entry per round

    @property
    def median(self):
        return statistics.median(self.per_round)

    @property
    def minimum(self):
        return min(self.per_round)

    @property
    def maximum(self):
        return max(self.per_round)

    @property
    def throughput(self):
        """Units per second at the median time per call."""
        return self.units_per_call / self.median


def synchronizer(device):
    """A function that waits for queued work on ``device`` (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_interleaved(methods, rounds, steps, warmup=3, sync=None, log=None):
    """Time ``methods`` over ``rounds`` interleaved rounds of ``steps`` calls each.

    Each method first runs ``warmup`` untimed calls. Fills ``method.per_round`` with the
    mean seconds per call of each round and returns ``methods``.
    """
    sync = sync or (lambda: None)
    for m in methods:
        for _ in range(warmup):
            m.call()
        sync()
        m.per_round = []
    n = len(methods)
    for r in range(rounds):
        order = [methods[(r + i) % n] for i in range(n)]  # rotate the order every round
        for m in order:
            gc.collect()
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                m.call()
            sync()
            m.per_round.append((time.perf_counter() - start) / steps)
        if log is not None:
            log(f"  round {r + 1}/{rounds}: "
                + ", ".join(f"{m.name} {1e3 * m.per_round[-1]:.2f} ms" for m in methods))
    return methods


@dataclass
class Ratio:
    """A time ratio: median, min and max of the per-round ratios, and the ratio of the
    fastest rounds (robust to rounds slowed down by other load on the machine)."""

    median: float
    minimum: float
    maximum: float
    of_minima: float

    def __str__(self):
        return f"{self.median:.3f} [{self.minimum:.3f}, {self.maximum:.3f}]"


def paired_ratio(a, b):
    """Ratio of ``a``'s time per unit to ``b``'s, formed round by round."""
    ratios = [(x / a.units_per_call) / (y / b.units_per_call)
              for x, y in zip(a.per_round, b.per_round)]
    of_minima = (a.minimum / a.units_per_call) / (b.minimum / b.units_per_call)
    return Ratio(statistics.median(ratios), min(ratios), max(ratios), of_minima)


# --------------------------------------------------------------------------- output
def markdown_table(headers, rows, align=None):
    """A markdown table; ``align`` is a string of 'l'/'r' per column (default: l then r)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values):
        out = []
        for v, w, a in zip(values, widths, align):
            out.append(v.ljust(w) if a == "l" else v.rjust(w))
        return "| " + " | ".join(out) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1))
                          for w, a in zip(widths, align)) + "|"
    return "\n".join([line([str(h) for h in headers]), rule] + [line(r) for r in cells])


def fmt_ms(seconds):
    return f"{1e3 * seconds:.2f}"


def fmt_rate(per_second):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.2f} {unit}"
    return f"{per_second:.1f}"


def verdict(ratio, target):
    """'met' when the median ratio is within the target, else 'NOT met'."""
    return "met" if ratio.median <= target else "NOT met"


def ratio_table(entries, what="time"):
    """Markdown table of ``(label, Ratio, target or None)`` entries."""
    rows = []
    for label, ratio, target in entries:
        rows.append([label, str(ratio), f"{ratio.of_minima:.3f}",
                     "" if target is None else f"<= {target}",
                     "" if target is None else verdict(ratio, target)])
    return markdown_table([f"ratio ({what})", "median [min, max] over rounds",
                           "fastest round / fastest round", "target (median)", "status"],
                          rows, align="lrrll")


# --------------------------------------------------------------------------- machine
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_description(device="cpu"):
    """(label, value) pairs describing the machine and the software."""
    import pyro

    info = [
        ("platform", platform.platform()),
        ("python", sys.version.split()[0]),
        ("cpu", cpu_model()),
        ("logical cpus", str(os.cpu_count())),
        ("torch", torch.__version__),
        ("torch threads", str(torch.get_num_threads())),
        ("pyro", pyro.__version__),
        ("device", str(device)),
    ]
    if torch.cuda.is_available():
        info.append(("cuda device", torch.cuda.get_device_name(0)))
    info.append(("load average (1, 5, 15 min) at start", load_average()))
    return info


def load_average():
    """The 1, 5 and 15 minute load averages, as text (other work running on the machine)."""
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def resolve_device(name):
    """``torch.device`` for ``name``, or None (with a message) when CUDA is unavailable."""
    if name == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available on this machine: benchmarks skipped (run with --device cpu).")
        return None
    return torch.device(name)


def log(message):
    print(message, file=sys.stderr, flush=True)


@dataclass
class Settings:
    """Repetition counts for one benchmark."""

    rounds: int
    steps: int
    warmup: int


def settings(quick, full, small):
    return Settings(*(small if quick else full))


def fmt_optional(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


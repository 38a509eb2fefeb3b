"""Plates: ``pyro.plate`` without the subsample site when nothing is subsampled, and
Pyro's plate broadcasting without needless ``expand`` calls."""



import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.poutine.indep_messenger import IndepMessenger
from pyro.poutine.plate_messenger import PlateMessenger
from pyro.poutine.subsample_messenger import SubsampleMessenger

from ...shapes import broadcast_shape
from ...validation import check_plate


PARTICLE_PLATE = "_particles"


class Plate(PlateMessenger):
    """``pyro.plate`` without the subsample site when nothing is subsampled.

    A site whose ``infer["block_plates"]`` names the plate stays outside it, as in
    NumPyro's plates (counterfactual worlds keep their shared noise outside the world plate).

    Pyro's plate always runs a subsample site through the effect stack to draw its
    indices; with no subsampling those are ``arange(size)``, so this plate makes them
    lazily. Subsampled plates behave exactly as ``pyro.plate``.
    """

    def __init__(self, name, size=None, subsample_size=None, subsample=None, dim=None,
                 use_cuda=None, device=None):
        check_plate(name, size, subsample_size)  # Pyro divides by zero or blames the guide
        if size is None or subsample is not None or subsample_size not in (None, size):
            super().__init__(name, size, subsample_size, subsample, dim, use_cuda, device)
            return
        IndepMessenger.__init__(self, name, size, dim, device)
        self.subsample_size = size
        self._indices = None

    def __enter__(self):
        super().__enter__()
        if not self._vectorized:
            return None
        if self._indices is None:
            self._indices = _arange(self.size, self.device)
        return self._indices

    def _process_message(self, msg):
        if self.name in (msg.get("infer") or {}).get("block_plates", ()):
            return  # a site kept outside this plate (NumPyro's convention)
        SubsampleMessenger._process_message(self, msg)
        if msg["type"] == "sample" and not msg["done"]:
            _broadcast(msg)


def _log_prob_spans(msg, fn, target):
    """Whether an observed value makes the log density span ``target`` without ``expand``.

    Expanding the distribution of an observed site only to score it repeats the
    parameter arithmetic over the whole plate (``[K, N]`` instead of ``[K, 1]``); when
    the value already carries the plate dimensions the log density has the same shape.
    """
    value = msg["value"]
    if not msg["is_observed"] or not torch.is_tensor(value):
        return False
    event_dim = len(fn.event_shape)
    value_batch = value.shape[:value.dim() - event_dim]
    try:
        return tuple(broadcast_shape(value_batch, fn.batch_shape)) == tuple(target)
    except RuntimeError:
        return False


def _broadcast(msg):
    """Pyro's plate broadcasting, skipping ``expand`` when the batch shape already fits
    (or when an observed value supplies it)."""
    fn = msg["fn"]
    if not isinstance(fn, TorchDistributionMixin):
        return
    actual = tuple(fn.batch_shape)
    target = [None if size == 1 else size for size in actual]
    for f in msg["cond_indep_stack"]:
        if f.dim is None or f.size == -1:
            continue
        if -f.dim > len(target):
            target = [None] * (-f.dim - len(target)) + target
        if target[f.dim] is not None and target[f.dim] != f.size:
            raise ValueError(
                f"Shape mismatch inside plate({f.name!r}) at site {msg['name']!r} dim {f.dim}: "
                f"the plate has size {f.size} but the distribution's batch shape has "
                f"{target[f.dim]}")
        target[f.dim] = f.size
    n = len(target)
    for i in range(n):
        if target[i] is None:
            j = i - n
            target[i] = actual[j] if len(actual) >= -j else 1
    if tuple(target) != actual and not _log_prob_spans(msg, fn, target):
        msg["fn"] = fn.expand(target)
        if msg["fn"].has_rsample != fn.has_rsample:
            msg["fn"].has_rsample = fn.has_rsample


_ARANGES = {}


def _arange(size, device):
    """Cached ``arange(size)``: a plate's indices when nothing is subsampled."""
    key = (size, str(device))
    if key not in _ARANGES:
        _ARANGES[key] = torch.arange(size, device=device)
    return _ARANGES[key]

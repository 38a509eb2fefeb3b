"""The Messenger that records a run for a strategy, and the ``Trace`` view of it."""

import math

import pyro.distributions
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.messenger import Messenger

from ...errors import ShapeError
from ...shapes import broadcast_shape
from ...trace_view import PlateInfo, Site, Trace
from ...validation import (check_distribution_backend, explain_score_failure, value_broadcasts,
                           value_shape_error)
from .pyro_internals import SUBSAMPLE


class Recorder(Messenger):
    """Records sample, deterministic and param sites of one run.

    ``replay``: values (by site name) that latent sites take instead of being drawn; an
    entry named after a subsampled plate gives that plate's indices (the guide's, so that
    the model scores each local latent against its own data point, as Pyro does).
    ``draw``: ``draw(msg)`` called for each latent site that is not replayed; it may set
    ``msg["value"]`` (and change ``msg["fn"]``) to choose how the site is sampled.
    ``adjust``: ``adjust(msg)`` called for each replayed site (e.g. to relax its distribution).
    """

    def __init__(self, replay=None, draw=None, adjust=None):
        super().__init__()
        self.replay = replay
        self.draw = draw
        self.adjust = adjust
        self.sites = {}
        self.params = {}
        self.deterministics = {}
        self.subsamples = {}
        self.plate_sizes = {}  # a subsampled plate's full size, by name

    def _pyro_sample(self, msg):
        if type(msg["fn"]) is SUBSAMPLE:
            if self.replay is not None and msg["name"] in self.replay:
                msg["value"] = _checked_indices(msg, self.replay[msg["name"]])
            return
        check_distribution_backend(msg["name"], msg["fn"], "torch")
        if msg["is_observed"]:
            return
        replay = self.replay
        if replay is not None and msg["name"] in replay:
            msg["value"] = replay[msg["name"]]
            if self.adjust is not None:
                self.adjust(msg)
        elif self.draw is not None:
            self.draw(msg)

    def _pyro_post_sample(self, msg):
        name = msg["name"]
        if type(msg["fn"]) is SUBSAMPLE:  # a plate's own subsample site, not a random variable
            if _subsampled(msg["fn"]):
                self.subsamples[name] = msg["value"]
                self.plate_sizes[name] = msg["fn"].size
            return
        if msg["infer"].get("_deterministic"):
            self.deterministics[name] = msg["value"]
            return
        if name in self.sites:
            raise ValueError(f"sample site {name!r} appears twice in one run; site names must be unique")
        self.sites[name] = msg

    def _pyro_post_param(self, msg):
        self.params[msg["name"]] = msg["value"]


def _subsampled(fn):
    return fn.subsample_size is not None and fn.subsample_size < fn.size


def _checked_indices(msg, indices):
    fn = msg["fn"]
    if not _subsampled(fn) or indices.dim() != 1 or indices.shape[0] != fn.subsample_size:
        raise ShapeError(f"plate {msg['name']!r}: the guide subsampled {tuple(indices.shape)} indices, "
                         f"but the model's plate takes subsample_size={fn.subsample_size} of "
                         f"{fn.size}; give both plates the same size and subsample_size",
                         site=msg["name"])
    return indices


def _is_one(scale):
    return isinstance(scale, (int, float)) and scale == 1


def _site_log_prob(site):
    try:
        log_prob = site.fn.log_prob(site.value)
    except (ValueError, RuntimeError) as error:
        if value_broadcasts(site):
            named = explain_score_failure(site, error, "torch")  # the site, and what it expects
            if named is not None:
                raise named from error
            raise
        raise value_shape_error(site, error) from error
    if site.observed and type(site.fn) in _CLAMPED and "probs" in vars(site.fn):
        log_prob = _impossible_as_minus_inf(site.fn, site.value, log_prob)
    return scale_and_mask(log_prob, site.scale, site.mask)


_CLAMPED = (pyro.distributions.Bernoulli, pyro.distributions.Categorical)


def _impossible_as_minus_inf(fn, value, log_prob):
    """torch clamps probabilities of 0 (to about 1e-7) before taking logs, so evidence that
    is impossible under the model (Bernoulli(0.) observed as 1) would score a finite log
    density; observed sites get -inf there, so the evidence reads as impossible."""
    probs = fn.probs
    if isinstance(fn, pyro.distributions.Bernoulli):
        exact = torch.where(value == 1, probs, 1 - probs)
    else:
        batch = broadcast_shape(probs.shape[:-1], value.shape)
        index = value.long().expand(batch).unsqueeze(-1)
        exact = probs.expand(tuple(batch) + probs.shape[-1:]).gather(-1, index).squeeze(-1)
    impossible = exact == 0
    return log_prob.masked_fill(impossible, -math.inf) if bool(impossible.any()) else log_prob


def _plates(msg):
    return tuple(PlateInfo(f.name, f.dim, f.size) for f in msg["cond_indep_stack"])


def to_trace(recorder, return_value=None):
    """The common :class:`Trace` view of what a :class:`Recorder` saw."""
    sites = {
        name: Site(
            name=name,
            value=msg["value"],
            fn=msg["fn"],
            observed=msg["is_observed"],
            plates=_plates(msg),
            infer=msg["infer"],
            scale=msg["scale"],
            mask=msg["mask"],
            _log_prob_fn=_site_log_prob,
        )
        for name, msg in recorder.sites.items()
    }
    from .backend import BACKEND  # the backend module imports this one

    trace = Trace(sites, recorder.params, recorder.deterministics, return_value, BACKEND)
    trace.subsamples = recorder.subsamples
    trace.plate_sizes = recorder.plate_sizes
    return trace

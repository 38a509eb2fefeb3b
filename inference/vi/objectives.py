"""Variational objectives as small functions of the particles' log-weights.

Every objective receives ``log_p`` and ``log_q``: arrays whose first axis runs over
the ``K`` particles (and, when the latents are local to a plate, whose second axis
runs over that plate's elements, each with its own importance weights). It returns a
surrogate loss whose gradient is the estimator's, and the bound's value.

    >>> import torch
    >>> from ppl.backends.torch import BACKEND
    >>> log_p, log_q = torch.tensor([[-1.0], [-2.0]]), torch.tensor([[-1.5], [-1.5]])
    >>> float(ELBO().loss(BACKEND.ops, log_p, log_q, {}, {})[1])
    0.0
    >>> round(float(IWAE(2).loss(BACKEND.ops, log_p, log_q, {}, {})[1]), 4)
    0.1201
"""

import math
import numbers

from ..arguments import count


class Objective:
    """Base class. ``detached_samples``: the objective has its own proposal gradient, so
    the guide is sampled without reparameterisation. ``supports_enum``: the objective is
    linear in the log-weights, so enumerated sites can be summed out exactly."""

    detached_samples = False
    supports_enum = False
    sleep = 0.0
    sleep_inputs = None

    def __init__(self, num_particles=1):
        self.num_particles = count(type(self).__name__, "num_particles", num_particles)

    def __repr__(self):
        return f"{type(self).__name__}(num_particles={self.num_particles})"

    def loss(self, ops, log_p, log_q, score_log_q, baselines):
        """(surrogate loss to minimise, value of the bound)."""
        raise NotImplementedError


def _score_terms(ops, signal, score_log_q, baselines, reduce_particles):
    """Sum over score-function sites of (signal - baseline) * log q, with the signal fixed,
    less the baselines' own fitting losses (so that subtracting it from a loss fits them)."""
    total = 0.0
    for name, log_q_site in score_log_q.items():
        baseline = baselines.get(name)
        centred = signal if baseline is None else ops.stop_gradient(signal - baseline(signal))
        total = total + ops.sum(reduce_particles(centred * log_q_site, 0))
        if baseline is not None:
            total = total - baseline.loss(signal)
    return total


class ELBO(Objective):
    """Evidence lower bound E_q[log p(x, z) - log q(z)], averaged over ``num_particles``."""

    supports_enum = True

    def loss(self, ops, log_p, log_q, score_log_q, baselines):
        log_w = log_p - log_q
        # one particle: skip the mean over a length-one axis (one node less to differentiate)
        value = ops.sum(log_w) if log_w.shape[0] == 1 else ops.sum(ops.mean(log_w, 0))
        surrogate = -value
        if score_log_q:
            surrogate = surrogate - _score_terms(
                ops, ops.stop_gradient(log_w), score_log_q, baselines, ops.mean)
        return surrogate, value


_NEAR_ONE = 1e-3  # |1 - alpha| below which the Renyi bound is taken by its expansion


class Renyi(Objective):
    """Renyi-alpha bound (1 / (1 - alpha)) log (1/K) sum_k w_k^(1 - alpha); alpha = 0 is IWAE."""

    def __init__(self, alpha=0.0, num_particles=2):
        super().__init__(num_particles)
        if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not math.isfinite(alpha):
            raise ValueError(f"Renyi: alpha must be a finite number, got {alpha!r}")
        if alpha == 1:
            raise ValueError("Renyi(alpha=1) is the ELBO: use ELBO(num_particles) instead")
        self.alpha = float(alpha)

    def __repr__(self):
        return f"Renyi(alpha={self.alpha}, num_particles={self.num_particles})"

    def loss(self, ops, log_p, log_q, score_log_q, baselines):
        gap = 1.0 - self.alpha
        if abs(gap) < _NEAR_ONE:
            # the closed form divides a difference of nearly equal numbers by ~0; its expansion
            # in (1 - alpha): mean log w + (1 - alpha) / 2 * the spread of log w (plug-in)
            log_w = log_p - log_q
            mean = ops.mean(log_w, 0)
            bound = mean + 0.5 * gap * ops.mean(ops.square(log_w - mean), 0)
        else:
            bound = (ops.logsumexp(gap * (log_p - log_q), 0) - math.log(self.num_particles)) / gap
        value = ops.sum(bound)
        surrogate = -value
        if score_log_q:
            surrogate = surrogate - _score_terms(
                ops, ops.stop_gradient(bound), score_log_q, baselines, ops.sum)
        return surrogate, value


class IWAE(Renyi):
    """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k) (Burda et al. 2016)."""

    def __init__(self, num_particles=10):
        super().__init__(0.0, num_particles)

    def __repr__(self):
        return f"IWAE(num_particles={self.num_particles})"


def _log_mean_weight(ops, log_p, log_q, num_particles):
    """log p_hat(x) with the proposal held fixed: its gradient reaches the model only."""
    log_w = log_p - ops.stop_gradient(log_q)
    return ops.logsumexp(log_w, 0) - math.log(num_particles), ops.stop_gradient(log_w)


class VIS(Objective):
    """Forward chi-square variational importance sampling (Li et al., ICLR 2024).

    Model step: ascend log p_hat(x), p_hat = (1/K) sum_k w_k, proposal fixed.
    Proposal step: descend log (1/K) sum_k w_k^2 with its score-function gradient
    -sum_k (w_k^2 / sum_j w_j^2) grad log q(z_k).
    """

    detached_samples = True

    def __init__(self, num_particles=100):
        super().__init__(num_particles)

    def loss(self, ops, log_p, log_q, score_log_q, baselines):
        log_p_hat, log_w = _log_mean_weight(ops, log_p, log_q, self.num_particles)
        squared_weights = ops.softmax(2.0 * log_w, 0)
        proposal_loss = -ops.sum(squared_weights * log_q)
        value = ops.sum(log_p_hat)
        return -value + proposal_loss, value


class RWS(Objective):
    """Reweighted wake-sleep (Bornschein and Bengio 2015; Le et al. 2019).

    wake-theta ascends the IWAE bound in the model; wake-phi ascends
    sum_k w_bar_k log q(z_k) with self-normalised weights; ``sleep > 0`` adds that
    weight times log q(z | x) on (z, x) drawn from the model.

    The sleep phase runs the guide on the original arguments (Pyro's convention), which is
    right when the guide reads nothing from the observations. An amortised guide that
    takes the data as an argument needs ``sleep_inputs(dreamed, args, kwargs) -> (args,
    kwargs)``, which turns the dreamed observed values into the guide's arguments.
    """

    detached_samples = True

    def __init__(self, num_particles=10, wake_phi=1.0, sleep=0.0, sleep_inputs=None):
        super().__init__(num_particles)
        self.sleep_inputs = sleep_inputs
        if wake_phi < 0 or sleep < 0 or wake_phi + sleep == 0:
            raise ValueError("RWS: wake_phi and sleep are non-negative weights, not both zero")
        self.wake_phi = float(wake_phi)
        self.sleep = float(sleep)

    def loss(self, ops, log_p, log_q, score_log_q, baselines):
        log_p_hat, log_w = _log_mean_weight(ops, log_p, log_q, self.num_particles)
        value = ops.sum(log_p_hat)
        surrogate = -value
        if self.wake_phi:
            normalised = ops.softmax(log_w, 0)
            surrogate = surrogate - self.wake_phi * ops.sum(normalised * log_q)
        return surrogate, value

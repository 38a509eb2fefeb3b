"""State-space models with exact answers: a linear-Gaussian chain (the Kalman filter) and a
discrete hidden Markov model (the forward algorithm); the chain's smoothing distribution
by the Rauch-Tung-Striebel smoother.

Each model is written once with the ``ppl`` primitives, one step per ``ppl.markov``
iteration, so that it runs on both backends and under every strategy that draws (SMC,
Importance, VI). The oracles take either backend's arrays and compute in float64 numpy.

Linear-Gaussian: ``z_0 ~ N(0, q)``, ``z_t ~ N(a z_{t-1}, q)``, ``y_t ~ N(z_t, r)``.

    >>> ys = linear_gaussian_data(3, seed=0)
    >>> round(kalman_filter(ys)[0], 4)   # log p(y_0, y_1, y_2)
    -3.4504
    >>> from inference import SMC
    >>> result = SMC(linear_gaussian_model, num_particles=2000, rng_seed=0).run(ys)
    >>> abs(result.log_evidence - kalman_filter(ys)[0]) < 4 * result.log_evidence_stderr
    True

Discrete HMM: ``z_0 ~ Cat(initial)``, ``z_t ~ Cat(transition[z_{t-1}])``,
``y_t ~ N(locs[z_t], scale)``.

    >>> ys = hmm_data(4, seed=0)
    >>> log_z, filtered = forward_algorithm(ys)
    >>> filtered.shape, round(float(filtered.sum()), 6)   # p(z_3 | y_0..3)
    ((3,), 1.0)
"""

import math

import numpy as np

import ppl
import ppl.distributions as dist

from ._arrays import asarray, to_numpy

A, Q, R = 0.9, 1.0, 0.5  # the linear-Gaussian chain's defaults: z's factor and scales

INITIAL = np.array([0.6, 0.3, 0.1])
TRANSITION = np.array([[0.8, 0.15, 0.05],
                       [0.1, 0.8, 0.1],
                       [0.05, 0.15, 0.8]])
LOCS = np.array([-2.0, 0.0, 2.0])
SCALE = 1.0


def linear_gaussian_model(ys, a=A, q=Q, r=R):
    """One latent ``z_t`` and one observation ``y_t`` per step."""
    z = 0.0
    for t in ppl.markov(range(len(ys))):
        z = ppl.sample(f"z_{t}", dist.Normal(a * z, q))
        ppl.sample(f"y_{t}", dist.Normal(z, r), obs=ys[t])
    return z


def linear_gaussian_data(num_steps, a=A, q=Q, r=R, seed=0):
    """Observations drawn from the chain (an array of the active backend)."""
    rng = np.random.default_rng(seed)
    z, ys = 0.0, []
    for _ in range(num_steps):
        z = a * z + q * rng.normal()
        ys.append(z + r * rng.normal())
    return asarray(ys)


def kalman_filter(ys, a=A, q=Q, r=R):
    """(log p(y), the filtered means, the filtered variances) by the Kalman filter."""
    mean, var, log_evidence = 0.0, 0.0, 0.0
    means, variances = [], []
    for y in to_numpy(ys).astype(np.float64):
        mean, var = a * mean, a * a * var + q * q  # predict
        total = var + r * r
        log_evidence -= 0.5 * (math.log(2 * math.pi * total) + float(y - mean) ** 2 / total)
        gain = var / total
        mean, var = mean + gain * (y - mean), (1 - gain) * var
        means.append(mean)
        variances.append(var)
    return log_evidence, np.array(means), np.array(variances)


def kalman_smoother(ys, a=A, q=Q, r=R):
    """(the smoothed means, the smoothed variances) of every z_t given all of ys, by the
    Rauch-Tung-Striebel recursion over the Kalman filter's output."""
    _, means, variances = kalman_filter(ys, a, q, r)
    smooth_mean, smooth_var = means.copy(), variances.copy()
    for t in range(len(means) - 2, -1, -1):
        predicted = a * a * variances[t] + q * q
        gain = variances[t] * a / predicted
        smooth_mean[t] = means[t] + gain * (smooth_mean[t + 1] - a * means[t])
        smooth_var[t] = variances[t] + gain * gain * (smooth_var[t + 1] - predicted)
    return smooth_mean, smooth_var


def hmm_model(ys, initial=None, transition=None, locs=None, scale=SCALE):
    """A three-state chain with Normal emissions (the module's tables unless given)."""
    initial = asarray(INITIAL if initial is None else initial)
    transition = asarray(TRANSITION if transition is None else transition)
    locs = asarray(LOCS if locs is None else locs)
    z = None
    for t in ppl.markov(range(len(ys))):
        probs = initial if z is None else transition[z]
        z = ppl.sample(f"z_{t}", dist.Categorical(probs))
        ppl.sample(f"y_{t}", dist.Normal(locs[z], scale), obs=ys[t])
    return z


def hmm_data(num_steps, seed=0):
    """Observations drawn from the module's HMM (an array of the active backend)."""
    rng = np.random.default_rng(seed)
    z, ys = rng.choice(3, p=INITIAL), []
    for t in range(num_steps):
        if t:
            z = rng.choice(3, p=TRANSITION[z])
        ys.append(LOCS[z] + SCALE * rng.normal())
    return asarray(ys)


def forward_algorithm(ys, initial=INITIAL, transition=TRANSITION, locs=LOCS, scale=SCALE):
    """(log p(y), p(z_T | y)) by the forward algorithm, normalised at every step."""
    log_evidence, belief = 0.0, None
    for y in to_numpy(ys).astype(np.float64):
        prior = np.asarray(initial, np.float64) if belief is None else belief @ np.asarray(transition)
        likelihood = np.exp(-0.5 * ((y - np.asarray(locs)) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))
        joint = prior * likelihood
        log_evidence += math.log(float(joint.sum()))
        belief = joint / joint.sum()
    return log_evidence, belief

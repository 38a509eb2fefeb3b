"""What an SMC sweep returns: its particles, its evidence over resampling epochs and that
estimate's standard error; independent sweeps pooled into one.

    >>> import math, torch
    >>> from ppl.backends.torch import BACKEND
    >>> one = SMCResult(BACKEND.ops, torch.zeros(4), {}, math.log(2.0), 0.04, [])
    >>> round(one.log_evidence, 4), one.log_evidence_stderr
    (0.6931, 0.2)
"""

import math

import numpy as np

from ..importance import ImportanceResult


class SMCResult(ImportanceResult):
    """An SMC sweep's particles: the final ``log_weights`` and ``samples`` (ancestry
    applied), as :class:`ImportanceResult`'s, with the evidence of every epoch in
    :attr:`log_evidence`; ``resampled_at``: the latent sites where the particles were
    resampled."""

    def __init__(self, ops, log_weights, samples, log_evidence, relative_variance, resampled_at):
        super().__init__(ops, log_weights, samples)
        self._log_evidence = log_evidence
        self._relative_variance = relative_variance
        self.resampled_at = resampled_at

    @property
    def log_evidence(self):
        """sum over resampling epochs of log (1/K) sum_k w_k: an estimate of log p(x)."""
        return self._log_evidence

    @property
    def log_evidence_stderr(self):
        """The delta-method standard error of :attr:`log_evidence`, sqrt(var(Z_hat) / Z^2):
        Lee and Whiteley's estimate from one sweep's genealogy (multinomial resampling, the
        scheme it holds for), or the spread of two or more pooled sweeps."""
        if self._relative_variance is None:
            raise ValueError(
                "log_evidence_stderr: Lee and Whiteley's estimate from one sweep holds for "
                "multinomial resampling only (it reads the particles' genealogy, which systematic "
                "and stratified resampling correlate; it would come out too small); pass "
                "resampling='multinomial', or pool independent sweeps with run(..., num_steps=10)")
        return math.sqrt(max(self._relative_variance, 0.0))


def relative_variance(ops, log_weights, eve, num_resampled):
    """Lee and Whiteley (2018): var(Z_hat)/Z^2 ~ 1 - (K/(K-1))^(n+1) * (1 - sum_e S_e^2), S_e the
    final weight of the particles descended from time-0 particle e, n resampling epochs."""
    K = log_weights.shape[0]
    weights = ops.to_numpy(ops.exp(log_weights - ops.logsumexp(log_weights, 0))).astype(np.float64)
    by_eve = np.bincount(ops.to_numpy(eve).astype(np.int64), weights=weights, minlength=K)
    return 1.0 - (K / (K - 1)) ** (num_resampled + 1) * (1.0 - float(np.sum(by_eve ** 2)))


def pooled(ops, results):
    """Independent sweeps as one result: Z_hat the mean of theirs, each particle weighted by
    its sweep's Z_hat times its normalised weight; the relative variance combined from the
    sweeps' own or, where they have none, from their spread."""
    if len(results) == 1:
        return results[0]
    log_z = np.array([r.log_evidence for r in results])
    z = np.exp(log_z - log_z.max())
    own = [r._relative_variance for r in results]
    if all(v is not None for v in own):
        relative = float(np.sum(z ** 2 * np.array(own)) / z.sum() ** 2)
    else:  # the sample variance of the mean of S unbiased estimates
        relative = float(np.var(z, ddof=1) / len(z) / z.mean() ** 2)
    log_weights = ops.concatenate([r.log_weights - r.log_total_weight + float(lz)
                                   for r, lz in zip(results, log_z)], 0)
    samples = {n: ops.concatenate([r.samples[n] for r in results], 0) for n in results[0].samples}
    log_evidence = float(log_z.max() + np.log(z.mean()))
    return SMCResult(ops, log_weights, samples, log_evidence, relative,
                     [site for r in results for site in r.resampled_at])

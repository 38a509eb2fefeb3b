"""Convergence diagnostics of Markov chains, after Vehtari, Gelman, Simpson, Carpenter and
Bürkner (2021), "Rank-normalization, folding, and localization: an improved R-hat":
rank-normalised split R-hat, bulk and tail effective sample sizes. Draws are numpy arrays
``[chains, draws]`` (one scalar quantity); every function splits each chain in two halves
first, so that a trend within a chain shows as disagreement between halves.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> iid = rng.normal(size=(4, 1000))
    >>> round(float(r_hat(iid)), 2), bool(3000 < ess_bulk(iid) < 5000)
    (1.0, True)
    >>> bool(r_hat(iid + np.arange(4)[:, None]) > 1.5)  # chains stuck in different places
    True
"""

import numpy as np
import torch


def split_chains(draws):
    """``[chains, draws]`` as ``[2 * chains, draws // 2]`` (an odd draw in the middle dropped)."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2:
        raise ValueError(f"diagnostics take draws of shape [chains, draws], got {draws.shape}")
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half:]], 0)


def _rank_normalised(draws):
    """Each draw replaced by the normal quantile of its fractional rank over all chains."""
    flat = draws.reshape(-1)
    order = flat.argsort(kind="stable")
    ranks = np.empty(flat.size)
    ranks[order] = np.arange(1, flat.size + 1)
    p = (ranks - 0.375) / (flat.size + 0.25)  # Blom's offsets, as in the paper
    return torch.special.ndtri(torch.as_tensor(p, dtype=torch.float64)).numpy().reshape(draws.shape)


def _basic_r_hat(chains):
    m, n = chains.shape
    within = chains.var(axis=1, ddof=1).mean()
    between = n * chains.mean(axis=1).var(ddof=1)
    if within == 0:
        return np.nan if between == 0 else np.inf
    return np.sqrt(((n - 1) / n * within + between / n) / within)


def r_hat(draws):
    """Rank-normalised split R-hat: the larger of the bulk's and the folded tails'; near 1
    when the chains agree (the paper recommends trusting draws only below 1.01)."""
    chains = split_chains(draws)
    folded = np.abs(chains - np.median(chains))
    return max(_basic_r_hat(_rank_normalised(chains)), _basic_r_hat(_rank_normalised(folded)))


def _ess(chains):
    """Effective sample size of split chains (Geyer's initial monotone sequence)."""
    m, n = chains.shape
    if n < 4:
        return np.nan
    centred = chains - chains.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(centred, size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size, axis=1)[:, :n] / n
    within = acov[:, 0].mean() * n / (n - 1)
    if within == 0:
        return np.nan
    var_plus = within * (n - 1) / n + (chains.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    rho = 1 - (within - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    pairs = rho[:-1:2] + rho[1::2]  # Geyer: sums of adjacent pairs, kept while positive
    positive = np.argmax(pairs <= 0) if (pairs <= 0).any() else len(pairs)
    pairs = np.minimum.accumulate(pairs[:positive])  # made monotone
    tau = -1 + 2 * pairs.sum()
    return m * n / max(tau, 1.0 / np.log10(m * n))


def ess_bulk(draws):
    """Bulk effective sample size: of the rank-normalised split chains (for means, medians)."""
    return _ess(_rank_normalised(split_chains(draws)))


def ess_tail(draws):
    """Tail effective sample size: the smaller of the indicators' of the 5% and 95%
    quantiles (for interval ends)."""
    chains = split_chains(draws)
    low, high = np.quantile(chains, [0.05, 0.95])
    return min(_ess((chains <= low).astype(np.float64)), _ess((chains <= high).astype(np.float64)))


def summary(by_chain):
    """name -> {mean, sd, r_hat, ess_bulk, ess_tail} for ``by_chain`` (name -> array
    ``[chains, draws, ...]``); a site with event dimensions gets an array per statistic,
    one entry per element."""
    out = {}
    for name, draws in by_chain.items():
        draws = np.asarray(draws, dtype=np.float64)
        shape = draws.shape[2:]
        flat = draws.reshape(draws.shape[:2] + (-1,))
        stats = {"mean": flat.mean(axis=(0, 1)), "sd": flat.std(axis=(0, 1), ddof=1),
                 "r_hat": np.array([r_hat(flat[..., i]) for i in range(flat.shape[-1])]),
                 "ess_bulk": np.array([ess_bulk(flat[..., i]) for i in range(flat.shape[-1])]),
                 "ess_tail": np.array([ess_tail(flat[..., i]) for i in range(flat.shape[-1])])}
        out[name] = {k: (float(v[0]) if not shape else v.reshape(shape)) for k, v in stats.items()}
    return out

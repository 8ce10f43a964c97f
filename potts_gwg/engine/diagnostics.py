"""Effective sample size of a scalar statistic, per chain (Geyer's initial positive sequence)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def effective_sample_size(trace: Tensor) -> Tensor:
    """ESS of each chain's trace ``(n, B)`` -> ``(B,)`` float64.

    ESS = n / τ with τ = −1 + 2 Σ_{m<M} Γ_m, Γ_m = ρ_{2m} + ρ_{2m+1} the sums of adjacent
    autocorrelations, truncated before the first Γ_m ≤ 0 and made monotone (Geyer 1992, the
    initial positive/monotone sequence estimator). Autocorrelations by FFT, O(n log n).
    A chain whose statistic never changes has no defined ESS: NaN.
    """
    n = trace.shape[0]
    if n < 4:
        return torch.full(trace.shape[1:], float("nan"), dtype=torch.float64)
    centred = trace.detach().to("cpu", torch.float64)
    centred = centred - centred.mean(0)
    spectrum = torch.fft.rfft(centred, n=2 * n, dim=0)
    autocovariance = torch.fft.irfft(spectrum * spectrum.conj(), n=2 * n, dim=0)[:n] / n
    variance = autocovariance[0]
    rho = autocovariance / torch.where(variance > 0, variance, 1.0)
    pairs = n // 2
    gamma = rho[:2 * pairs].reshape(pairs, 2, -1).sum(1)                      # (pairs, B)
    initial_positive = torch.cumprod((gamma > 0).double(), dim=0)
    monotone = torch.cummin(gamma, dim=0).values
    # τ < 1 (antithetic chains) is legitimate; cap ESS at n·log10(n) as Stan does.
    tau = (-1 + 2 * (monotone * initial_positive).sum(0)).clamp(min=1 / max(math.log10(n), 1))
    ess = n / tau
    return torch.where(variance > 0, ess, torch.full_like(ess, float("nan")))

"""Poisson counts by exact inversion of given uniforms, vectorised for any device.

`poisson(rate, v)` returns, element by element, the smallest k >= 0 with P(X <= k) >= u for X ~
Poisson(rate) and u = (v + 1) / 2: the inverse CDF at u. A count is therefore a pure function of (rate, u)
and, for a fixed u, never decreases when the rate grows: the same uniforms at two rates give coupled counts
(common random numbers across severities).

Fast path (most elements). The inverse is floor(x*) where x* solves Q(x*, rate) = u, Q the regularised upper
incomplete gamma function (P(X <= n) = Q(n + 1, rate)). Inverting the Cornish-Fisher expansion of the
gamma quantile to its third order (skewness, excess kurtosis and fifth-cumulant terms) gives, with
w = Phi^-1(u),
    x ~ lam + sqrt(lam) w + (w^2 + 2)/6 - (w^3 + 2w)/(72 sqrt(lam)) + (3w^4 + 7w^2 - 16)/(810 lam),
the same leading terms as M. Giles, "Algorithm 955: approximation of the inverse Poisson cumulative
distribution function", ACM TOMS 42(1), 2016. Its error, measured against roots of Q (scipy, float64) on a
grid of rates 0.5 .. 3e4 and of w in [-5.4, 5.4] (the range the 2^23-point uniforms reach), stays below
0.0024 (1 + |w|)^5 / lam^1.5; `ERROR_SCALE` doubles that, and a float32 rounding term is added. Where x is
farther than this bound from an integer, floor(x) is the exact inverse.

Exact path (elements near an integer, in the far tails, or with rate < `FAST_MIN_RATE`). In float64, the CDF
is summed upward with the pmf recurrence p(k) = p(k - 1) rate / k until it reaches u. Below `SUM_MAX_RATE`
(every rate the corruptions use) the sum starts at k = 0, so the CDF is exact to float64 rounding (~1e-15)
and a count can differ from the true inverse, or between devices, only where u lies that close to a CDF
value. Above it (e^-rate would underflow) the sum starts at floor(x) - 2 (lower where that is already past
u) with P(X <= k) from `torch.special.gammaincc`, which is accurate to ~1e-10 only. Summing from 0 costs
O(rate) steps.
"""
from __future__ import annotations

from typing import Optional

import torch

from .stream import normal_quantile_

ERROR_SCALE = 0.005
ROUNDING = 1.5e-6
FAST_MIN_RATE = 0.5
SUM_MAX_RATE = 256.0
STEPS_PER_ROUND = 4
CHUNK = 1 << 16  # elements per step of the fast path on the CPU: its temporaries stay in cache


def _fast_inverse(rate: torch.Tensor, w: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """count = floor(x) (written in place) from w, the normal quantiles of v (stream.normal_quantile_), which are
    overwritten; returns where that is not certainly the exact inverse (1-D tensors)."""
    r = rate.clamp(min=FAST_MIN_RATE)
    s = r.sqrt()
    w2 = w * w
    q = w2 + 2
    x = torch.addcmul(r, s, w).add_(q, alpha=1 / 6)
    x.sub_(q.mul_(w).div_(s), alpha=1 / 72)
    x.add_(w2.mul(3).add_(7).mul_(w2).sub_(16).div_(r), alpha=1 / 810)
    t = w.abs_().add_(1)
    t2 = w2.copy_(t).mul_(t)
    bound = (t2 * t2).mul_(t).mul_(ERROR_SCALE).div_(s.mul_(r)).add_(t2.add_(r), alpha=ROUNDING)
    bound.masked_fill_(rate < FAST_MIN_RATE, 1.0)
    torch.floor(x, out=count).clamp_(min=0)
    # distance of x from the nearest integer, against the bound: |frac - 0.5| + bound >= 0.5 is unsure
    return x.sub_(count).sub_(0.5).abs_().add_(bound) >= 0.5


def _walk_up(k: torch.Tensor, cdf: torch.Tensor, pmf: torch.Tensor, rate: torch.Tensor,
             u: torch.Tensor) -> torch.Tensor:
    """min{k' >= k : P(X <= k') >= u} given cdf = P(X <= k) and pmf = P(X = k), all float64 [N].

    Steps are taken in rounds of STEPS_PER_ROUND on all still-active elements (an element that reached u stops
    counting), and the active set is compacted between rounds.
    """
    out = k.clone()
    index = torch.arange(len(k), device=k.device)
    while True:
        active = (cdf < u).nonzero().squeeze(1)
        if not len(active):
            return out
        index, k, cdf, pmf, rate, u = (t.index_select(0, active) for t in (index, k, cdf, pmf, rate, u))
        for _ in range(STEPS_PER_ROUND):
            k = k + (cdf < u)
            pmf = pmf * rate / k.clamp(min=1)
            cdf = cdf + pmf
        out[index] = k


def _start_below(rate: torch.Tensor, u: torch.Tensor, guess: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(k, P(X <= k), P(X = k)) at a k <= guess with P(X <= k) < u, for rates >= SUM_MAX_RATE (float64)."""
    k = guess.clamp(min=0)
    while True:
        cdf = torch.special.gammaincc(k + 1, rate)
        high = cdf >= u  # the guess is above the answer (far tails): step down
        if not bool(high.any()):
            pmf = torch.exp(k * torch.log(rate) - rate - torch.lgamma(k + 1))
            return k, cdf, pmf
        k = torch.where(high, (k - 10 * rate.sqrt() - 10).clamp(min=0), k)


def _exact(rate: torch.Tensor, u: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """float64 inverse CDF: summed from k = 0 below SUM_MAX_RATE, from below `guess` above it."""
    k = torch.zeros_like(rate)
    cdf = torch.exp(-rate)
    pmf = cdf.clone()
    large = (rate >= SUM_MAX_RATE).nonzero().squeeze(1)
    if len(large):
        k[large], cdf[large], pmf[large] = _start_below(rate[large], u[large], guess[large])
    return _walk_up(k, cdf, pmf, rate, u)


def poisson(rate: torch.Tensor, v: torch.Tensor, w: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Poisson(rate) counts as float32, by inversion at u = (v + 1) / 2; v uniform in (-1, 1) (Draws.symmetric).
    `w`: the normal quantiles of v (stream.normal_quantile_) when the caller has them already (read, not
    modified); else computed here."""
    shape = rate.shape
    rate = rate.to(torch.float32).reshape(-1)
    v = v.to(torch.float32).reshape(-1)
    w = None if w is None else w.to(torch.float32).reshape(-1)
    out = torch.empty_like(rate)
    unsure = torch.empty(rate.shape, dtype=torch.bool, device=rate.device)
    step = CHUNK if rate.device.type == "cpu" else max(rate.numel(), 1)
    for start in range(0, rate.numel(), step):
        end = start + step
        quantile = normal_quantile_(v[start:end].clone()) if w is None else w[start:end].clone()
        unsure[start:end] = _fast_inverse(rate[start:end], quantile, out[start:end])
    rest = unsure.nonzero().squeeze(1)
    if len(rest):
        guess = out[rest].double().sub_(2)  # a start below the answer for rates >= SUM_MAX_RATE
        u = v[rest].double().add_(1).mul_(0.5)
        out[rest] = _exact(rate[rest].double(), u, guess).to(torch.float32)
    return out.view(shape)

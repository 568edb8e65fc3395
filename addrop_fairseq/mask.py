"""AD-DROP's candidate region and drop sampling (paper section 2.3, Eqs. 6-7), free of fairseq.

Shapes follow attention maps: scores ``[B, H, T, S]`` (batch, heads, queries, keys) and a boolean
``valid`` mask broadcastable to it (True where a query may attend to a key: not padding, not a
future position). Everything here is vectorised over rows: no Python loop over heads or queries.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .errors import AddropError

STRATEGIES = ("high", "low", "random")


def candidate_count(valid: torch.Tensor, p: float) -> torch.Tensor:
    """``ceil(p * n)`` per query row, ``n`` = that row's number of valid keys (Eq. 6)."""
    n = valid.sum(dim=-1, keepdim=True)
    # exact integer arithmetic where p is a short decimal: 0.3 * 10 must give 3, not 4
    scale = 10**6
    p_int = round(p * scale)
    if abs(p_int - p * scale) < 1e-6:
        return (n * p_int + scale - 1) // scale
    return torch.ceil(n.double() * p).long()


def candidate_region(
    scores: torch.Tensor, valid: torch.Tensor, p: float, strategy: str = "high"
) -> torch.Tensor:
    """The top ``ceil(p * n)`` valid keys of every query row by attribution score.

    ``strategy="low"`` takes the lowest-scored keys instead (the paper's section 2.2 control);
    ``strategy="random"`` takes every valid key, so that dropping is plain random attention
    dropout at rate q (the section 2.2 random baseline). Ties are broken arbitrarily but the
    count is always exact.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {STRATEGIES}")
    valid = valid.expand_as(scores)
    if strategy == "random":
        return valid.clone()
    if strategy == "low":
        scores = -scores
    k = candidate_count(valid, p)  # [B, H, T, 1]
    k_max = int(k.max()) if k.numel() else 0
    candidates = torch.zeros_like(valid)
    if k_max == 0:
        return candidates
    ranked = scores.float().masked_fill(~valid, float("-inf"))
    # invalid keys share -inf and could outrank valid -inf scores; rank validity first
    ranked = torch.where(valid, ranked.nan_to_num(neginf=torch.finfo(torch.float32).min), ranked)
    _, top = ranked.topk(k_max, dim=-1, sorted=True)
    within = torch.arange(k_max, device=scores.device) < k  # [B, H, T, k_max]
    return candidates.scatter_(-1, top, within)


def sample_drop(
    candidates: torch.Tensor, valid: torch.Tensor, q: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Drop each candidate with probability q (Eq. 7); no row is ever left without a key.

    Returns a boolean ``[B, H, T, S]`` mask, True where the attention logit becomes -inf.
    """
    u = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    drop = candidates & (u < q)
    valid = valid.expand_as(candidates)
    emptied = valid.any(-1, keepdim=True) & ~(valid & ~drop).any(-1, keepdim=True)
    if bool(emptied.any()):
        # keep the dropped key that came closest to surviving, so the draw stays reproducible
        rescue = u.masked_fill(~drop, -1.0).argmax(-1, keepdim=True)
        keep = torch.zeros_like(drop).scatter_(-1, rescue, emptied)
        drop = drop & ~keep
    return drop


def addrop_mask(
    scores: Optional[torch.Tensor], valid: torch.Tensor, p: float, q: float,
    strategy: str = "high", generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Candidate region then drop sampling. ``scores=None`` draws a random region (RD)."""
    shape = torch.broadcast_shapes(valid.shape, scores.shape) if scores is not None else valid.shape
    if scores is None:
        scores = torch.rand(shape, generator=generator, device=valid.device)
    candidates = candidate_region(scores.expand(shape), valid.expand(shape), p, strategy)
    return sample_drop(candidates, valid.expand(shape), q, generator)


def validate_rate(name: str, value: float) -> float:
    """p and q are rates in (0, 1]; anything else is a user error worth a clear message."""
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value <= 1.0:
        raise AddropError(f"--addrop-{name}={value!r} is outside (0, 1]")
    return float(value)

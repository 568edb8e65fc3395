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
    if strategy == "random":
        return valid.expand_as(scores).clone()
    if strategy == "low":
        scores = -scores
    # counted on the unexpanded validity: heads share it, so counting once per head is waste
    k = candidate_count(valid, p)  # [B, 1 or H, T, 1]
    # a bound known without reading k back from the device (no host sync on a GPU); float
    # error can only raise it, and rows with fewer candidates ignore the extra columns
    k_bound = min(scores.size(-1), math.ceil(p * scores.size(-1))) if p > 0 else 0
    valid = valid.expand_as(scores)
    candidates = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    if k_bound == 0 or scores.numel() == 0:
        return candidates
    # invalid keys rank below every valid key, even a valid -inf score (mapped to the lowest
    # finite value) or a NaN one (mapped to 0)
    ranked = torch.where(valid, scores.float().nan_to_num(neginf=torch.finfo(torch.float32).min),
                         float("-inf"))
    _, top = ranked.topk(k_bound, dim=-1, sorted=True)
    within = torch.arange(k_bound, device=scores.device) < k  # [B, 1 or H, T, k_bound]
    return candidates.scatter_(-1, top, within.expand_as(top))


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
    # keep the dropped key that came closest to surviving, so the draw stays reproducible.
    # Done unconditionally: asking whether any row emptied would stall a GPU, and causal rows
    # with one valid key empty in almost every decoder layer anyway.
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
    candidates = candidate_region(scores.expand(shape), valid, p, strategy)
    return sample_drop(candidates, valid, q, generator)


def validate_rate(name: str, value: float) -> float:
    """p and q are rates in (0, 1]; anything else is a user error worth a clear message."""
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value <= 1.0:
        raise AddropError(f"--addrop-{name}={value!r} is outside (0, 1]")
    return float(value)

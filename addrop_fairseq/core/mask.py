"""AD-DROP's candidate region and drop sampling (paper section 2.3, Eqs. 6-7), free of fairseq.

Shapes follow attention maps: scores ``[B, H, T, S]`` (batch, heads, queries, keys) and a boolean
``valid`` mask broadcastable to it (True where a query may attend to a key: not padding, not a
future position). Everything here is vectorised over rows: no Python loop over heads or queries,
and nothing is read back from the device.

The region and the drops are computed on a compact ``[B, H, T, K]`` form, ``K = ceil(p * S)``:
the key positions of each row's region (one ``topk`` without sorting) and whether each is
dropped. Rows have different numbers of valid keys n, hence different region sizes
``k = ceil(p * n) <= K``; each row's ``K - k`` spare slots are filled with invalid keys of that
row (there are always enough: ``K - k <= S - n``), which rank above every valid key and are
never dropped, so one ``topk`` with a constant K returns every row's exact region. The drop
draw, the rescue of an emptied row and the count of dropped keys then touch K columns instead
of S, and the full ``[B, H, T, S]`` mask is written by one scatter.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .errors import AddropError

STRATEGIES = ("high", "low", "random")


def unexpanded(x: torch.Tensor) -> torch.Tensor:
    """The tensor an ``expand`` came from: broadcast (stride-0) dimensions cut to size 1.

    Validity arrives expanded over heads; counting or masking it per head is wasted work."""
    index = tuple(slice(0, 1) if stride == 0 and size > 1 else slice(None)
                  for size, stride in zip(x.shape, x.stride()))
    return x[index]


def _ceil_count(n: torch.Tensor, p: float) -> torch.Tensor:
    # exact integer arithmetic where p is a short decimal: 0.3 * 10 must give 3, not 4
    scale = 10**6
    p_int = round(p * scale)
    if abs(p_int - p * scale) < 1e-6:
        return (n * p_int + scale - 1) // scale
    return torch.ceil(n.double() * p).long()


def candidate_count(valid: torch.Tensor, p: float) -> torch.Tensor:
    """``ceil(p * n)`` per query row, ``n`` = that row's number of valid keys (Eq. 6)."""
    return _ceil_count(valid.sum(dim=-1, keepdim=True), p)


def region_bound(keys: int, p: float) -> int:
    """K: the region size of a row whose every key is valid, by the same rule as
    ``candidate_count`` (so ``K - k <= S - n`` holds exactly for every row)."""
    return int(_ceil_count(torch.tensor(keys), p)) if p > 0 else 0


def _random_int32(shape, generator, device) -> torch.Tensor:
    """Uniform over all int32 values: the two halves of 64-bit draws (half the generator calls
    of float32 ``rand``, 32 bits instead of its 24)."""
    count = math.prod(shape)
    bits = torch.empty(count // 2 + 1, dtype=torch.int64, device=device)
    bits = bits.random_(-2**63, None, generator=generator).view(torch.int32)
    return bits[:count].view(shape)


def _region(
    scores: Optional[torch.Tensor], valid: torch.Tensor, p: float, strategy: str,
    shape: torch.Size, generator: Optional[torch.Generator], finite: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(positions [B, H, T, K] int64, member [B, H, T, K] bool: the position is a valid key of
    the region; False marks a spare slot filled with an invalid key). ``finite=True`` promises
    finite scores (the caller checked) and skips making them so."""
    device, keys = valid.device, shape[-1]
    valid = unexpanded(valid)
    if strategy == "random":  # every valid key is a candidate: no ranking at all
        positions = torch.arange(keys, device=device).expand(shape)
        return positions, valid.expand(shape)
    bound = min(keys, region_bound(keys, p))
    invalid = ~valid
    # spare slots: the first K - k invalid keys of each row (counted on the unexpanded validity)
    spare = invalid & (invalid.cumsum(-1, dtype=torch.int32) <= bound - candidate_count(valid, p))
    if scores is None:
        # RD: a uniformly random region. 30 random bits per key: valid keys in [-2^29, 2^29),
        # spare slots shifted above them and other invalid keys below
        ranked = _random_int32(shape, generator, device) >> 2
        offset = torch.zeros(valid.shape, dtype=torch.int32, device=device)
        offset.masked_fill_(invalid, -2**30).masked_fill_(spare, 2**30)
        top, positions = (ranked + offset).topk(bound, dim=-1, sorted=False)
        return positions, top < 2**29
    if strategy == "low":
        scores = -scores
    dtype = scores.dtype if scores.is_floating_point() else torch.float32
    finfo = torch.finfo(dtype)
    # valid keys keep their score, made finite (NaN: 0, -inf: the lowest finite value); spare
    # slots rank above them (+inf), other invalid keys below (-inf)
    offset = torch.zeros(valid.shape, dtype=dtype, device=device)
    offset.masked_fill_(invalid, float("-inf")).masked_fill_(spare, float("inf"))
    if not finite:
        scores = scores.to(dtype).nan_to_num(nan=0.0, posinf=finfo.max, neginf=finfo.min)
    ranked = scores + offset
    top, positions = ranked.topk(bound, dim=-1, sorted=False)
    return positions, top != float("inf")


def _drop_compact(
    positions: torch.Tensor, member: torch.Tensor, valid: torch.Tensor, q: float,
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    """[B, H, T, K] bool: each region key dropped with probability q (Eq. 7); a row that would
    lose every valid key keeps the dropped key that came closest to surviving."""
    u = torch.rand(positions.shape, generator=generator, device=positions.device)
    drop = member & (u < q)
    # a row can only empty when its region holds all its valid keys (k = n)
    n = unexpanded(valid).sum(-1, dtype=torch.int32)  # [B, 1 or H, T]
    emptied = (drop.sum(-1, dtype=torch.int32) == n) & (n > 0)
    # done unconditionally (asking whether any row emptied would stall a GPU). In an emptied
    # row every member is dropped; u + 1 >= 1 ranks members above the spare slots (0)
    closest = u.add_(1).mul_(member).argmax(-1, keepdim=True)
    kept = drop.gather(-1, closest) & ~emptied.unsqueeze(-1)
    return drop.scatter_(-1, closest, kept)


def _empty_region(shape, p: float) -> bool:
    return shape.numel() == 0 or region_bound(shape[-1], p) == 0


def _scatter(positions: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.bool, device=positions.device).scatter_(
        -1, positions, values)


def candidate_region(
    scores: torch.Tensor, valid: torch.Tensor, p: float, strategy: str = "high"
) -> torch.Tensor:
    """The top ``ceil(p * n)`` valid keys of every query row by attribution score.

    ``strategy="low"`` takes the lowest-scored keys instead (the paper's section 2.2 control);
    ``strategy="random"`` takes every valid key, so that dropping is plain random attention
    dropout at rate q (the section 2.2 random baseline). Ties are broken arbitrarily (but the
    same way every time for the same scores) and the count is always exact.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {STRATEGIES}")
    shape = torch.broadcast_shapes(valid.shape, scores.shape)
    if strategy == "random":
        return valid.expand(shape).clone()
    if _empty_region(shape, p):
        return torch.zeros(shape, dtype=torch.bool, device=scores.device)
    positions, member = _region(scores.expand(shape), valid, p, strategy, shape, None)
    return _scatter(positions, member, shape)


def sample_drop(
    candidates: torch.Tensor, valid: torch.Tensor, q: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Drop each candidate with probability q (Eq. 7); no row is ever left without a key.

    For any candidate mask (``addrop_mask`` works on the compact region instead). Returns a
    boolean ``[B, H, T, S]`` mask, True where the attention logit becomes -inf.
    """
    u = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    drop = candidates & (u < q)
    valid = valid.expand_as(candidates)
    emptied = valid.any(-1, keepdim=True) & ~(valid & ~drop).any(-1, keepdim=True)
    # keep the dropped key that came closest to surviving, so the draw stays reproducible
    rescue = u.masked_fill(~drop, -1.0).argmax(-1, keepdim=True)
    keep = torch.zeros_like(drop).scatter_(-1, rescue, emptied)
    return drop & ~keep


def addrop_mask(
    scores: Optional[torch.Tensor], valid: torch.Tensor, p: float, q: float,
    strategy: str = "high", generator: Optional[torch.Generator] = None, finite: bool = False,
) -> torch.Tensor:
    """Candidate region then drop sampling. ``scores=None`` draws a random region (RD).
    ``finite=True``: the caller has checked that the scores are finite (skips a full pass).

    Returns a boolean ``[B, H, T, S]`` mask, True where the attention logit becomes -inf.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r}: expected one of {STRATEGIES}")
    shape = torch.broadcast_shapes(valid.shape, scores.shape) if scores is not None else valid.shape
    if strategy != "random" and _empty_region(shape, p) or shape.numel() == 0:
        return torch.zeros(shape, dtype=torch.bool, device=valid.device)
    if scores is not None:
        scores = scores.expand(shape)
    positions, member = _region(scores, valid, p, strategy, shape, generator, finite)
    drop = _drop_compact(positions, member, valid, q, generator)
    return _scatter(positions, drop, shape)


def validate_rate(name: str, value: float) -> float:
    """p and q are rates in (0, 1]; anything else is a user error worth a clear message."""
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 < value <= 1.0:
        raise AddropError(f"--addrop-{name}={value!r} is outside (0, 1]")
    return float(value)

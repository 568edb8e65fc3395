"""Properties of the AD-DROP masks over generated attention shapes (hypothesis).

Every case builds the validity the attention module computes from fairseq's own masks (key
padding, left or right; the causal future mask, as float -inf, -1e8 or bool) and checks:
padded and future keys are never in the candidate region nor dropped; each row's region holds
exactly ceil(p * n) keys (n: its valid keys); dropped keys lie inside the region; no row with a
valid key loses all of them; a row without valid keys is left alone.
"""
import math
import random
from decimal import Decimal

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from addrop_fairseq.modules.attention import valid_keys
from addrop_fairseq.core.mask import addrop_mask, candidate_count, candidate_region

CASES = {"typed p": 4000, "any float p": 4000, "random region, non-finite scores": 2500}
FIXED = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

unit_interval = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)
# what a user types: 1 to 6 decimal places, e.g. 0.3 or 0.125
typed_rate = st.integers(1, 6).flatmap(
    lambda places: st.integers(1, 10**places).map(lambda k: float(Decimal(k) / 10**places)))


def near_short_decimal(p: float) -> bool:
    """Within 1e-12 of a 6-place decimal: candidate_count reads such a p as that decimal."""
    return abs(round(p * 10**6) - p * 10**6) < 1e-6


def expected_count(p: float, n: int) -> int:
    """ceil(p * n) for the p the user meant: typed decimals exactly (0.3 * 10 = 3, not 4)."""
    typed = Decimal(repr(p))
    if -typed.as_tuple().exponent <= 6:
        return math.ceil(typed * n)
    return math.ceil(p * n)


@st.composite
def attention_cases(draw, rates=unit_interval, strategies=("high", "low")):
    kind = draw(st.sampled_from(["encoder_self", "decoder_self", "encoder_decoder"]))
    batch, heads, src = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 12))
    tgt = draw(st.integers(1, 12)) if kind == "encoder_decoder" else src
    # the details that shrink poorly anyway come from one seed, which keeps generation cheap
    seed = draw(st.integers(0, 2**31 - 1))
    rng = random.Random(seed)
    return dict(
        kind=kind, batch=batch, heads=heads, src=src, tgt=tgt,
        lengths=[rng.randint(0, src) for _ in range(batch)], left_pad=rng.random() < 0.5,
        future_mask=rng.choice(["-inf", "-1e8", "bool"]),
        p=draw(rates), q=draw(unit_interval), strategy=draw(st.sampled_from(strategies)),
        seed=seed, scores=rng.choice(["normal", "ties", "nan", "inf"]),
    )


def build(case):
    """(scores, validity from the attention module, the validity expected, generator)."""
    b, h, t, s = case["batch"], case["heads"], case["tgt"], case["src"]
    lengths = torch.tensor(case["lengths"])
    positions = torch.arange(s)
    padded = positions[None, :] < (s - lengths)[:, None] if case["left_pad"] else \
        positions[None, :] >= lengths[:, None]
    expected = ~padded[:, None, None, :].expand(b, 1, t, s)
    attn_mask = None
    if case["kind"] == "decoder_self":
        future = positions[None, :] > torch.arange(t)[:, None]
        expected = expected & ~future
        if case["future_mask"] == "bool":
            attn_mask = future
        else:  # fairseq's buffered_future_mask: a float mask, -inf (or a large negative) above the diagonal
            attn_mask = torch.zeros(t, s).masked_fill(future, float(case["future_mask"]))
    valid = valid_keys(padded if bool(padded.any()) else None, attn_mask, b, t, s, torch.device("cpu"))
    generator = torch.Generator().manual_seed(case["seed"])
    scores = torch.randn(b, h, t, s, generator=generator)
    if case["scores"] == "ties":
        scores = scores.round().clamp(-1, 1)
    elif case["scores"] in ("nan", "inf"):
        bad = torch.rand(b, h, t, s, generator=generator) < 0.3
        values = [math.nan] if case["scores"] == "nan" else [math.inf, -math.inf]
        scores[bad] = values[case["seed"] % len(values)]
    return scores, valid, expected, generator


def check_drop(drop, valid):
    valid = valid.expand_as(drop)
    assert drop.dtype == torch.bool and drop.shape == valid.shape
    assert not (drop & ~valid).any(), "a padded or future key was dropped"
    has_keys = valid.any(-1)
    assert (valid & ~drop).any(-1)[has_keys].all(), "a row lost all its keys"
    assert not drop[~has_keys].any()


def check_region_and_drop(case):
    scores, valid, expected, generator = build(case)
    assert torch.equal(valid.expand_as(expected), expected), "validity is not padding + causality"
    p, q, strategy = case["p"], case["q"], case["strategy"]
    drop = addrop_mask(scores, valid, p, q, strategy, generator)
    region = candidate_region(scores, valid, p, strategy)
    full = valid.expand_as(region)
    assert not (region & ~full).any(), "a padded or future key entered the candidate region"
    n = full.sum(-1)
    counts = torch.tensor([expected_count(p, k) for k in range(case["src"] + 1)])[n]
    assert torch.equal(region.sum(-1), counts), f"region size is not ceil({p} * n)"
    assert not (drop & ~region).any(), "a key outside the candidate region was dropped"
    check_drop(drop, valid)


def run_counted(name, strategy, check):
    seen = []

    @settings(max_examples=CASES[name], **FIXED)
    @given(strategy)
    def property_holds(case):
        seen.append(case)
        check(case)

    property_holds()
    print(f"\n{name}: {len(seen)} generated cases")
    assert len(seen) >= CASES[name]
    return len(seen)


def test_region_and_drop_with_typed_rates():
    run_counted("typed p", attention_cases(rates=typed_rate), check_region_and_drop)


def test_region_and_drop_with_any_float_rate():
    # floats within 1e-12 of a short decimal are read as it (see the examples below)
    rates = unit_interval.filter(lambda p: not near_short_decimal(p))
    run_counted("any float p", attention_cases(rates=rates), check_region_and_drop)


def test_random_region_and_random_strategy_keep_every_row():
    def check(case):
        scores, valid, _, generator = build(case)
        if case["strategy"] == "random":
            drop = addrop_mask(scores, valid, case["p"], case["q"], "random", generator)
        else:  # RD: a random candidate region of ceil(p * n) keys
            drop = addrop_mask(None, valid.expand_as(scores), case["p"], case["q"], "high", generator)
            limit = candidate_count(valid.expand_as(drop), case["p"]).squeeze(-1)
            assert (drop.sum(-1) <= limit).all()
        check_drop(drop, valid)

    run_counted("random region, non-finite scores",
                attention_cases(strategies=("random", "rd")), check)


@pytest.mark.parametrize("p, n, count", [
    (0.1 + 0.2, 10, 3),  # 0.30000000000000004 is what 0.3 often becomes in arithmetic
    (0.3, 10, 3), (0.7, 10, 7), (0.2, 5, 1), (1.0, 7, 7), (1e-6, 1, 1), (0.5, 0, 0),
])
def test_short_decimals_are_read_as_typed(p, n, count):
    valid = torch.arange(max(n, 1))[None, None, None, :] < n
    assert int(candidate_count(valid, p)) == count

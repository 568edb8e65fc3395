"""The candidate region and drop sampling of paper Eqs. 6-7, alone."""
import math

import pytest
import torch

from addrop_fairseq.errors import AddropError
from addrop_fairseq.core.mask import (
    addrop_mask,
    candidate_count,
    candidate_region,
    sample_drop,
    validate_rate,
)


def padded_valid(lengths, heads, tgt, src):
    """[B, 1, T, S] validity for key padding with the given key lengths."""
    keys = torch.arange(src)[None, :] < torch.tensor(lengths)[:, None]
    return keys[:, None, None, :].expand(len(lengths), 1, tgt, src)


def causal_valid(batch, length):
    return torch.ones(length, length, dtype=torch.bool).tril()[None, None].expand(batch, 1, length, length)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.5, 0.6, 0.8, 1.0])
def test_candidate_count_is_exact_ceil_with_padding(p):
    torch.manual_seed(0)
    lengths = [7, 3, 10, 1]
    valid = padded_valid(lengths, 4, 5, 10)
    scores = torch.randn(4, 4, 5, 10)
    region = candidate_region(scores, valid, p)
    counts = region.sum(-1)
    for b, n in enumerate(lengths):
        assert (counts[b] == math.ceil(round(p * n, 9))).all()
    assert not (region & ~valid).any(), "a padded key entered the candidate region"


def test_short_decimal_p_is_not_rounded_up_by_float_error():
    # 0.3 * 10 == 3.0000000000000004 in floating point; the region must hold 3 keys, not 4
    valid = torch.ones(1, 1, 1, 10, dtype=torch.bool)
    assert int(candidate_count(valid, 0.3)) == 3
    assert int(candidate_count(valid, 0.7)) == 7


def test_candidate_count_with_causal_mask():
    valid = causal_valid(2, 6)
    region = candidate_region(torch.randn(2, 3, 6, 6), valid, 0.5)
    expected = torch.tensor([math.ceil(0.5 * (i + 1)) for i in range(6)])
    assert (region.sum(-1) == expected).all()
    assert not (region & ~valid).any(), "a future key entered the candidate region"


def test_region_is_the_highest_scores_and_low_is_the_lowest():
    scores = torch.tensor([[[[0.5, -1.0, 3.0, 2.0, 0.0]]]])
    valid = torch.ones_like(scores, dtype=torch.bool)
    high = candidate_region(scores, valid, 0.4)
    low = candidate_region(scores, valid, 0.4, strategy="low")
    assert high[0, 0, 0].tolist() == [False, False, True, True, False]
    assert low[0, 0, 0].tolist() == [False, True, False, False, True]


def test_drop_low_is_the_complement_of_drop_high_when_regions_split_the_row():
    torch.manual_seed(1)
    scores = torch.randn(3, 2, 4, 10)
    valid = torch.ones_like(scores, dtype=torch.bool)
    high = candidate_region(scores, valid, 0.5)
    low = candidate_region(scores, valid, 0.5, strategy="low")
    assert torch.equal(high, ~low)


def test_random_strategy_makes_every_valid_key_a_candidate():
    valid = padded_valid([4, 2], 2, 3, 5)
    region = candidate_region(torch.randn(2, 2, 3, 5), valid, 0.2, strategy="random")
    assert torch.equal(region, valid.expand(2, 2, 3, 5))


def test_invalid_keys_never_outrank_valid_keys_with_very_low_scores():
    scores = torch.full((1, 1, 1, 4), float("-inf"))
    scores[..., 0] = -1e30
    valid = torch.tensor([True, True, False, False]).view(1, 1, 1, 4)
    region = candidate_region(scores, valid, 1.0)
    assert region[0, 0, 0].tolist() == [True, True, False, False]


def test_drop_fraction_among_candidates_is_close_to_q():
    generator = torch.Generator().manual_seed(0)
    valid = torch.ones(8, 4, 16, 16, dtype=torch.bool)
    candidates = candidate_region(torch.randn(8, 4, 16, 16), valid, 0.5)
    for q in (0.1, 0.3, 0.7):
        drop = sample_drop(candidates, valid, q, generator)
        fraction = drop.sum().item() / candidates.sum().item()
        assert abs(fraction - q) < 0.02, (q, fraction)
        assert not (drop & ~candidates).any(), "dropped a position outside the candidate region"


def test_no_row_is_ever_fully_masked():
    generator = torch.Generator().manual_seed(0)
    valid = torch.cat([padded_valid([1, 2, 5], 1, 4, 5), padded_valid([3, 1, 2], 1, 4, 5)])
    for _ in range(20):
        drop = addrop_mask(torch.randn(6, 2, 4, 5), valid, p=1.0, q=1.0, generator=generator)
        kept = valid & ~drop
        assert kept.any(-1).all()
        # with p = q = 1 everything but the one rescued key is dropped
        assert (kept.sum(-1) == 1).all()


def test_seeded_generator_reproduces_masks():
    scores, valid = torch.randn(2, 2, 5, 5), causal_valid(2, 5)
    first = addrop_mask(scores, valid, 0.5, 0.5, generator=torch.Generator().manual_seed(7))
    second = addrop_mask(scores, valid, 0.5, 0.5, generator=torch.Generator().manual_seed(7))
    other = addrop_mask(scores, valid, 0.5, 0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_random_region_without_scores_has_exact_size():
    valid = padded_valid([6, 3], 1, 2, 6)
    generator = torch.Generator().manual_seed(0)
    drop = addrop_mask(None, valid, p=0.5, q=1.0, generator=generator)
    # q = 1 drops the whole region: ceil(0.5 * n) keys per row
    assert drop[0].sum(-1).eq(3).all() and drop[1].sum(-1).eq(2).all()


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5, float("nan")])
def test_rates_outside_the_unit_interval_are_rejected(value):
    with pytest.raises(AddropError, match=r"--addrop-p=.*outside \(0, 1\]"):
        validate_rate("p", value)

"""The issue-15 fast paths agree with the plain definitions they replace.

GA from the fused attention's output, (dF/dO) V^T, equals dF/dA from the explicit path; the CPU
masked attention (boolean mask saved, additive mask rebuilt in the backward) equals PyTorch's
scaled_dot_product_attention in values and gradients; the compact region is the top ceil(p*n)
valid keys by score; RD's random region is uniform over the valid keys.
"""
import math

import torch
import torch.nn.functional as F

from addrop_fairseq.modules.attention import _CpuMaskedAttention, additive_mask, attention_mode, masked_attention
from addrop_fairseq.core.mask import addrop_mask, candidate_region, region_bound
from addrop_fairseq.core.step import gradient_scores
from conftest import tiny_batch, tiny_translation


def target_of(model, sample, output):
    return output[0].log_softmax(-1)[..., 3].sum()


def test_ga_from_the_fused_output_equals_the_gradient_of_the_probabilities():
    task, model = tiny_translation(seed=2)
    model.train()  # dropout 0 in the tiny model: both passes compute the same function
    sample = tiny_batch(task.source_dictionary)
    from addrop_fairseq.modules.attention import maskable_attention
    modules = maskable_attention(model)
    with attention_mode(modules, "record"):
        first = model(**sample["net_input"])
    probs = [m.recorded for m in modules]
    expected = torch.autograd.grad(target_of(model, sample, first), probs)
    for m in modules:
        m.recorded = None
    with attention_mode(modules, "gradient"):
        fused = model(**sample["net_input"])
    outputs = [m.recorded_output for m in modules]
    probs = [m.recorded for m in modules]
    # self-attention takes the fused path; fairseq asks the last encoder-decoder attention for
    # its weights (alignment), so that one records its probabilities
    assert all((o is None) != (p is None) for o, p in zip(outputs, probs))
    assert all(o is not None for m, o in zip(modules, outputs) if m.kind != "encoder_decoder")
    assert (fused[0] - first[0]).abs().max() < 1e-5
    got = gradient_scores(target_of(model, sample, fused), probs, outputs)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * (1 + a.abs().max())


def test_gradient_mode_records_probabilities_where_attention_dropout_is_on():
    task, model = tiny_translation(seed=2, attention_dropout=0.1)
    model.train()
    sample = tiny_batch(task.source_dictionary)
    from addrop_fairseq.modules.attention import maskable_attention
    modules = maskable_attention(model)
    with attention_mode(modules, "gradient"):
        model(**sample["net_input"])
    assert all(m.recorded is not None and m.recorded_output is None for m in modules)


def test_cpu_masked_attention_matches_scaled_dot_product_attention():
    torch.manual_seed(0)
    b, h, t, s, d = 2, 3, 5, 7, 4
    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float64).float().requires_grad_()
               for n in (t, s, s))
    allowed = torch.rand(b, h, t, s) < 0.6
    allowed[..., 0] = True
    out = _CpuMaskedAttention.apply(q, k, v, ~allowed, 0.5)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    q2, k2, v2 = (x.detach().clone().requires_grad_() for x in (q, k, v))
    ref = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=allowed, scale=0.5)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q2, k2, v2))
    assert (out - ref).abs().max() < 1e-5
    for a, r in zip(grads, ref_grads):
        assert (a - r).abs().max() < 1e-5
    # the dispatcher takes the same function on CPU without dropout
    assert (masked_attention(q, k, v, ~allowed, 0.0, 0.5) - ref).abs().max() < 1e-5


def test_additive_mask_is_zero_where_allowed_and_exponentiates_to_zero_elsewhere():
    blocked = torch.tensor([False, True, False])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        mask = additive_mask(blocked, dtype)
        assert mask.dtype == dtype and mask[0] == 0 and mask[2] == 0
        assert mask[1] == torch.finfo(dtype).min
        logits = torch.tensor([3.0, 80.0, -2.0]) + mask.float()
        probs = logits.softmax(-1)
        assert probs[1] == 0 and torch.allclose(probs.sum(), torch.tensor(1.0))


def test_compact_region_is_the_top_scored_valid_keys():
    torch.manual_seed(3)
    b, h, t, s = 3, 2, 6, 11
    lengths = torch.tensor([11, 4, 1])
    valid = (torch.arange(s) < lengths[:, None])[:, None, None, :].expand(b, 1, t, s)
    scores = torch.randn(b, h, t, s)  # distinct: the top set is unique
    for p in (0.1, 0.3, 0.5, 0.9, 1.0):
        region = candidate_region(scores, valid, p)
        for bi in range(b):
            n = int(lengths[bi])
            k = math.ceil(round(p * n, 9))
            top = scores[bi, :, :, :n].topk(k, -1).indices
            expected = torch.zeros(h, t, s, dtype=torch.bool).scatter_(-1, top, True)
            assert torch.equal(region[bi], expected), (p, bi)
    assert region_bound(10, 0.3) == 3 and region_bound(7, 1.0) == 7


def test_random_region_is_uniform_over_the_valid_keys():
    generator = torch.Generator().manual_seed(0)
    valid = (torch.arange(10) < 8).view(1, 1, 1, 10).expand(1, 4, 500, 10)
    drop = addrop_mask(None, valid, p=0.5, q=1.0, generator=generator)  # q = 1: region = drops
    assert drop.sum(-1).eq(4).all() and not drop[..., 8:].any()
    frequency = drop.float().mean((0, 1, 2))[:8]  # each valid key: 4 of 8, expected 0.5
    assert (frequency - 0.5).abs().max() < 0.05, frequency

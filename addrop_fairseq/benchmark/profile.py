"""Where AD-DROP's per-layer cost goes: one attention module, forward and backward, by part.

Times (process CPU, median of ``reps``) one decoder self-attention module of the benchmark's
size (256d, 4 heads, causal mask and key padding) at batch x length, in these settings:

- plain: fairseq's MultiheadAttention (its fused path), forward + backward
- apply, no drops: the AD-DROP second pass with an all-False drop mask (the cost of carrying a
  per-position mask through the attention kernel)
- apply RD / apply GA: the second pass with the mask AD-DROP draws (random region; region from
  given scores), mask making included
- mask RD / mask GA: ``addrop_mask`` alone
- record GA: the attribution pass of one module: forward in the mode GA uses, then the gradient
  of a scalar w.r.t. what it records, turned into dF/dA
"""
from __future__ import annotations

import inspect
import statistics
import time
from typing import List, Sequence, Tuple

import torch

EMBED_DIM, HEADS = 256, 4
HEADER = ("| B x L | plain | apply, no drops | apply RD | apply GA | mask RD | mask GA "
          "| record GA |")


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return 1000 * statistics.median(samples)


def profile_shape(batch: int, length: int, reps: int) -> List[float]:
    """Milliseconds of each part (the columns of ``HEADER`` after the shape) at one shape."""
    from fairseq.modules import MultiheadAttention

    from ..core import mask as mask_module
    from ..modules.attention import AddropMultiheadAttention, attention_mode

    finite = "finite" in inspect.signature(mask_module.addrop_mask).parameters
    embed, heads = EMBED_DIM, HEADS
    torch.manual_seed(0)
    plain = MultiheadAttention(embed, heads, dropout=0.0, self_attention=True)
    module = AddropMultiheadAttention.adopt(
        MultiheadAttention(embed, heads, dropout=0.0, self_attention=True), "decoder_self", 0)
    module.load_state_dict(plain.state_dict())
    x = torch.randn(length, batch, embed, requires_grad=True)
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[0, length - length // 8:] = True
    future = torch.triu(torch.full((length, length), float("-inf")), 1)
    scores = torch.randn(batch, heads, length, length)
    generator = torch.Generator().manual_seed(0)
    extra = {"finite": True} if finite else {}

    def rd(valid):
        return mask_module.addrop_mask(None, valid, 0.3, 0.3, generator=generator)

    def ga(valid):
        return mask_module.addrop_mask(scores, valid, 0.3, 0.3, generator=generator, **extra)

    def no_drops(valid):
        return torch.zeros(valid.shape, dtype=torch.bool)

    def run_plain():
        out, _ = plain(x, x, x, key_padding_mask=padding, attn_mask=future, need_weights=False)
        out.sum().backward()

    def run_apply(drop_fn):
        def run():
            with attention_mode([module], "apply", drop_fns=[drop_fn]):
                out, _ = module(x, x, x, key_padding_mask=padding, attn_mask=future,
                                need_weights=False)
            out.sum().backward()
        return run

    valid = (~padding[:, None, None, :] & torch.isfinite(future)).expand(
        batch, heads, length, length)

    def run_record():
        # the mode GA uses in this checkout: "gradient" where the module has it
        mode = "gradient" if hasattr(module, "recorded_output") else "record"
        with attention_mode([module], mode):
            out, _ = module(x, x, x, key_padding_mask=padding, attn_mask=future,
                            need_weights=False)
        recorded_output = getattr(module, "recorded_output", None)
        if recorded_output is not None:
            o, v = recorded_output
            (grad,) = torch.autograd.grad(out.sum(), o)
            score = grad @ v.detach().transpose(-1, -2)
        else:
            (score,) = torch.autograd.grad(out.sum(), module.recorded)
        module.recorded = None
        if hasattr(module, "recorded_output"):
            module.recorded_output = None
        return score

    return [timed(run_plain, reps), timed(run_apply(no_drops), reps),
            timed(run_apply(rd), reps), timed(run_apply(ga), reps),
            timed(lambda: rd(valid), reps), timed(lambda: ga(valid), reps),
            timed(run_record, reps)]


def profile_attention(shapes: Sequence[Tuple[int, int]], reps: int, threads: int) -> List[str]:
    """Prints one table row per (batch, length) as it is measured, then the whole table;
    returns the table's lines."""
    import addrop_fairseq

    torch.set_num_threads(threads)
    print(f"package: {addrop_fairseq.__file__}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    rows = [HEADER, "|" + "---|" * 8]
    for batch, length in shapes:
        cells = profile_shape(batch, length, reps)
        rows.append("| " + " | ".join([f"{batch}x{length}"] + [f"{c:.2f}" for c in cells]) + " |")
        print(rows[-1], flush=True)
    print("\nms per module, process CPU time, median of", reps)
    print("\n".join(rows))
    return rows

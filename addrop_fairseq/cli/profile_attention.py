"""Where AD-DROP's per-layer cost goes: one attention module, forward and backward, by part.

Times (process CPU, median of --reps) one decoder self-attention module of the benchmark's size
(256d, 4 heads, causal mask and key padding) at batch x length, in these settings:

- plain: fairseq's MultiheadAttention (its fused path), forward + backward
- apply, no drops: the AD-DROP second pass with an all-False drop mask (the cost of carrying a
  per-position mask through the attention kernel)
- apply RD / apply GA: the second pass with the mask AD-DROP draws (random region; region from
  given scores), mask making included
- mask RD / mask GA: ``addrop_mask`` alone
- record GA: the attribution pass of one module: forward in the mode GA uses, then the gradient
  of a scalar w.r.t. what it records, turned into dF/dA

Run it against any checkout of the package (PYTHONPATH), e.g. to compare two commits:

    addrop-profile-attention --shapes 2x256,1x512
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import time
import warnings

import torch
from addrop_fairseq.cli.policy import run


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return 1000 * statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="16x32,2x256,1x512", help="BATCHxLENGTH,...")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from fairseq.modules import MultiheadAttention

    import addrop_fairseq
    from addrop_fairseq.core import mask as mask_module
    from addrop_fairseq.modules.attention import AddropMultiheadAttention, attention_mode

    print(f"package: {addrop_fairseq.__file__}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")
    finite = "finite" in inspect.signature(mask_module.addrop_mask).parameters
    embed, heads = 256, 4
    header = ("| B x L | plain | apply, no drops | apply RD | apply GA | mask RD | mask GA "
              "| record GA |")
    rows = [header, "|" + "---|" * 8]
    for shape in args.shapes.split(","):
        batch, length = (int(v) for v in shape.split("x"))
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

        cells = [shape, timed(run_plain, args.reps), timed(run_apply(no_drops), args.reps),
                 timed(run_apply(rd), args.reps), timed(run_apply(ga), args.reps),
                 timed(lambda: rd(valid), args.reps), timed(lambda: ga(valid), args.reps),
                 timed(run_record, args.reps)]
        rows.append("| " + " | ".join([cells[0]] + [f"{c:.2f}" for c in cells[1:]]) + " |")
        print(rows[-1], flush=True)
    print("\nms per module, process CPU time, median of", args.reps)
    print("\n".join(rows))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

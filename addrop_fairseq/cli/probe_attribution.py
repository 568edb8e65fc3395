"""Faithfulness probe: evaluate a split while removing, at inference, the top k%, the bottom k%
or a random k% of each attention row's keys (ranked by attribution, pseudo-label target), for
k = 0, 10, ..., 90; plot the task metric and the loss against k.

    addrop-probe-attribution --path checkpoints/checkpoint_best.pt --data DATA \\
        --split valid --layers all --out probe.png

Metric: entity F1 (addrop_tagging), the GLUE task's first metric (addrop_sentence_prediction),
teacher-forced next-token accuracy (addrop_translation); --metric picks another of the logged
ones, or bleu for translation: beam search scored as fairseq-generate + addrop-score-bleu
score it, with the encoder's self-attention masked (--modules encoder_self; decoder attention
runs incrementally in beam search, where masks cannot apply). Each masked evaluation is
training's two-pass forward with q = 1 on the chosen attention (--modules, --layers). Writes the PNG and a JSON file with every point and the counts of removed
keys (rows_exact: rows that lost exactly ceil(k * n) of their n keys).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True, help="checkpoint file")
    parser.add_argument("--data", required=True, help="the prepared data directory")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--modules", dest="kinds", metavar="KINDS",
                        help="attention kinds (default: the checkpoint's)")
    parser.add_argument("--layers", default="all", help="'all' or comma-separated indices")
    parser.add_argument("--k", default="0,10,20,30,40,50,60,70,80,90",
                        help="percentages of each row's keys to remove")
    parser.add_argument("--orders", default="high,low,random")
    parser.add_argument("--attribution", choices=["ga", "iga", "aa"], default="ga")
    parser.add_argument("--iga-steps", type=int, default=20)
    parser.add_argument("--target", choices=["pseudo", "gold"], default="pseudo")
    parser.add_argument("--metric", help="a metric the task's validation logs, or bleu "
                        "(translation with --modules encoder_self: beam search, sacrebleu)")
    parser.add_argument("--beam", type=int, default=4, help="beam size for --metric bleu")
    parser.add_argument("--post-process", default="sentencepiece",
                        help="fairseq's --post-process for --metric bleu")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random order")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-examples", type=int, help="only the split's first batches "
                        "holding this many examples (a quick look)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--json", type=Path, help="default: OUT with .json")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    from addrop_fairseq.analysis.probe import probe_attribution

    result, json_path = probe_attribution(
        args.path, args.data, args.out, split=args.split, kinds=args.kinds, layers=args.layers,
        percentages=args.k, orders=[o for o in args.orders.split(",") if o],
        attribution=args.attribution, iga_steps=args.iga_steps, target=args.target,
        metric=args.metric, beam=args.beam, post_process=args.post_process, seed=args.seed,
        max_tokens=args.max_tokens, batch_size=args.batch_size, max_examples=args.max_examples,
        json_path=args.json, cpu=args.cpu)
    for order, points in result["curves"].items():
        print(f"{order:>6}: " + "  ".join(f"k={100 * p['k']:.0f} {p['metric']:.2f}" for p in points))
    print(f"probe_attribution: wrote {args.out} and {json_path}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

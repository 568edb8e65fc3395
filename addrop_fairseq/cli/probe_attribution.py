"""Faithfulness probe: evaluate a split while removing, at inference, the top k%, the bottom k%
or a random k% of each attention row's keys (ranked by attribution, pseudo-label target), for
k = 0, 10, ..., 90; plot the task metric and the loss against k.

    addrop-probe-attribution --path checkpoints/checkpoint_best.pt --data DATA \\
        --split valid --layers all --out probe.png

Metric: entity F1 (addrop_tagging), the GLUE task's first metric (addrop_sentence_prediction),
teacher-forced next-token accuracy (addrop_translation); --metric picks another of the logged
ones, or bleu for translation: beam search scored as fairseq-generate + score_bleu.py score it,
with the encoder's self-attention masked (--modules encoder_self; decoder attention runs
incrementally in beam search, where masks cannot apply). Each masked evaluation is training's two-pass forward with q = 1 on the chosen attention
(--modules, --layers). Writes the PNG and a JSON file with every point and the counts of removed
keys (rows_exact: rows that lost exactly ceil(k * n) of their n keys).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment.relative import relative_path
from addrop_fairseq.cli.policy import run


def shares(text: str):
    try:
        values = [int(x) / 100 for x in text.split(",") if x.strip()]
    except ValueError:
        raise AddropError(f"--k {text!r}: expected comma-separated percentages, e.g. 0,10,50") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise AddropError(f"--k {text!r}: percentages must be in 0..99")
    return sorted(set(values))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True, help="checkpoint file")
    parser.add_argument("--data", required=True, help="the prepared data directory")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--modules", help="attention kinds (default: the checkpoint's)")
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
    try:
        if args.out.suffix.lower() != ".png":
            raise AddropError(f"--out {args.out}: expected a .png file name")
        ks = shares(args.k)
        orders = [o for o in args.orders.split(",") if o]
        from addrop_fairseq.analysis import loading, probe

        start = time.time()
        loaded = loading.load_checkpoint(args.path, args.data, [args.split], args.cpu)
        modules = loading.chosen_modules(loaded.model, args.modules or loaded.criterion.addrop_kinds,
                                         args.layers)
        samples, count = [], 0
        for sample in loading.batches(loaded, args.split, args.max_tokens, args.batch_size):
            if args.max_examples is not None and count >= args.max_examples:
                break
            samples.append(sample)
            count += sample["nsentences"]
        result = probe.run_probe(loaded, samples, modules, ks, orders, args.attribution,
                                 args.target, args.seed, args.metric, args.iga_steps,
                                 beam=args.beam, post_process=args.post_process)
        result.update(checkpoint=relative_path(args.path), data=relative_path(args.data),
                      split=args.split, examples=count, attribution=args.attribution,
                      target=args.target, modules=sorted({m.kind for m in modules}),
                      layers=sorted({m.layer for m in modules}), seed=args.seed,
                      seconds=round(time.time() - start, 1))
        title = (f"{Path(args.path).name} on {args.split} ({count} examples): "
                 f"{args.attribution.upper()}, {args.target} target, "
                 f"{', '.join(result['modules'])} layers {args.layers}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        probe.plot_probe(result, args.out, title)
        json_path = args.json or args.out.with_suffix(".json")
        json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    except AddropError as error:
        print(f"probe_attribution: error: {error}", file=sys.stderr)
        return 1
    for order, points in result["curves"].items():
        print(f"{order:>6}: " + "  ".join(f"k={100 * p['k']:.0f} {p['metric']:.2f}" for p in points))
    print(f"probe_attribution: wrote {args.out} and {json_path}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

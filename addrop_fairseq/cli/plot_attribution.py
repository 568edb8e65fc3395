"""Attribution maps of one example (paper Fig. 1): attention A, attribution B, the candidate
region and one sampled drop mask per chosen layer and head, with the tokens on the axes.

    addrop-plot-attribution --path checkpoints/checkpoint_best.pt --data DATA \\
        --split valid --index 0 --layers 0 --heads 0,1 --out attribution.png

Works for checkpoints of addrop_translation, addrop_tagging and addrop_sentence_prediction.
The example is line INDEX of the prepared SPLIT. A and B come from training's record pass with
the checkpoint criterion's attribution target (--target overrides: pseudo or gold), the mask
from training's two-pass forward with a generator seeded by --seed. Writes the PNG and, next to
it, a JSON file with every plotted number.
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
    parser.add_argument("--index", type=int, default=0, help="example (line) of the split")
    parser.add_argument("--modules", dest="kinds", metavar="KINDS",
                        help="attention kinds (default: the checkpoint's --addrop-modules), "
                        "e.g. encoder_self,decoder_self,encoder_decoder")
    parser.add_argument("--layers", default="0", help="'all' or comma-separated indices")
    parser.add_argument("--heads", default="0", help="'all' or comma-separated indices")
    parser.add_argument("--attribution", choices=["ga", "iga", "aa"], default="ga")
    parser.add_argument("--iga-steps", type=int)
    parser.add_argument("--target", choices=["pseudo", "gold"],
                        help="attribution target (default: the checkpoint's)")
    parser.add_argument("--p", type=float, help="candidate region share (default: checkpoint's)")
    parser.add_argument("--q", type=float, help="drop probability (default: checkpoint's)")
    parser.add_argument("--strategy", choices=["high", "low", "random"])
    parser.add_argument("--seed", type=int, default=1, help="seed of the mask's generator")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--json", type=Path, help="default: OUT with .json")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    from addrop_fairseq.analysis.maps import plot_attribution

    json_path = plot_attribution(
        args.path, args.data, args.out, split=args.split, index=args.index, kinds=args.kinds,
        layers=args.layers, heads=args.heads, attribution=args.attribution,
        iga_steps=args.iga_steps, target=args.target, p=args.p, q=args.q, strategy=args.strategy,
        seed=args.seed, json_path=args.json, cpu=args.cpu)
    print(f"plot_attribution: wrote {args.out} and {json_path}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

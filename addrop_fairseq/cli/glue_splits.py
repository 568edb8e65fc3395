"""The held-out protocol's splits of a GLUE task (see addrop_fairseq/data/glue_splits.py).

    addrop-glue-splits --task cola --input ../shared/data/glue/CoLA \\
        --dest data/glue-splits/CoLA --settings full,16,64,256 --seed 1

writes DEST/SETTING/{train,dev,test}.tsv (train = rows trained on, dev = the selection split
drawn from the official train file, test = the official dev file) and DEST/splits.json (seed,
source sha256, the rows drawn), whole or not at all. Each DEST/SETTING is a GLUE task directory
for addrop-prepare-glue.
"""
from __future__ import annotations

import argparse
import sys

from addrop_fairseq.data import glue_splits
from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="GLUE task (cola, sst2, mrpc, stsb, rte ...)")
    parser.add_argument("--input", required=True, help="the task's official GLUE directory "
                        "(train.tsv, dev.tsv)")
    parser.add_argument("--dest", required=True, help="directory to write, whole or not at all")
    parser.add_argument("--settings", default=glue_splits.FULL,
                        help="comma-separated: 'full' (selection split drawn from train, the "
                             "rest trained on) and/or few-shot sizes, e.g. full,16,64,256")
    parser.add_argument("--seed", type=int, default=1, help="fixes every draw (default 1)")
    parser.add_argument("--selection-fraction", type=float, default=0.1,
                        help="share of the training rows drawn for selection in 'full' (0.1)")
    parser.add_argument("--force", action="store_true", help="replace an existing --dest whole")
    args = parser.parse_args(argv)
    record = glue_splits.write_splits(
        args.task, args.input, args.dest, glue_splits.parse_settings(args.settings),
        args.seed, args.selection_fraction, args.force)
    for setting, info in record["settings"].items():
        parts = []
        for split, name in (("train", "train"), ("valid", "selection"), ("test", "official dev")):
            counts = info[split].get("labels")
            shown = f" ({', '.join(f'{k}: {v}' for k, v in counts.items())})" if counts else ""
            parts.append(f"{name} {info[split]['examples']}{shown}")
        print(f"{record['task']} {setting}: " + "; ".join(parts))
    print(f"wrote {args.dest} (seed {record['seed']})")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

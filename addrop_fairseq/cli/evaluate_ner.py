"""Tag a prepared split with a checkpoint; write CoNLL predictions and seqeval's report.

    addrop-evaluate-ner --data DATA --path checkpoints/checkpoint_best.pt --split test \
        --output-dir results/

writes OUTPUT/SPLIT.pred.conll ("word gold predicted" per line, blank line between sentences, the
format conlleval reads) and OUTPUT/SPLIT.report.txt (seqeval's per-type report, entity-level,
CoNLL convention), and prints precision/recall/F1.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from addrop_fairseq.cli.policy import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="directory from addrop-prepare-conll2003")
    parser.add_argument("--path", required=True, help="checkpoint of an addrop_tagging run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--cpu", action="store_true", help="even where CUDA is available")
    args = parser.parse_args(argv)
    from addrop_fairseq.scoring.ner import evaluate_ner

    result = evaluate_ner(args.path, args.data, args.split, args.output_dir, args.max_tokens,
                          args.batch_size, args.cpu)
    print(result.report)
    print(f"{args.split}: {result.sentences} sentences | {result.scores}")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""Scores a checkpoint of ``--task addrop_sentence_prediction`` on splits of prepared GLUE data.

Prints one JSON line per split with the task's metrics (percentages, as in the training log)
when the split has labels, and writes, on request, one prediction per example in file order
(``--predictions-dir DIR``: DIR/SPLIT.txt) or the GLUE server's submission file of the split
(``--submission-dir DIR``: e.g. RTE.tsv for test; MNLI-m.tsv for test and MNLI-mm.tsv for test1).

    addrop-evaluate-glue --data DATA --path checkpoints/checkpoint_best.pt --split valid
    addrop-evaluate-glue --data DATA --path checkpoints/checkpoint_best.pt \\
        --split test,test1 --submission-dir submission
"""
import argparse
import json

from addrop_fairseq.cli.policy import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the directory addrop-prepare-glue wrote")
    parser.add_argument("--path", required=True, help="checkpoint file")
    parser.add_argument("--split", default="valid", help="comma-separated fairseq splits: valid, "
                        "valid1, test, test1 (MNLI: 1 = mismatched); one JSON line each")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--predictions-dir", help="write DIR/SPLIT.txt: one prediction per "
                        "line (label or score), in the order of the split's file")
    parser.add_argument("--submission-dir", help="write the GLUE submission file of each split")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args(argv)
    from addrop_fairseq.scoring.glue import evaluate_glue

    for report in evaluate_glue(args.path, args.data, args.split.split(","), args.batch_size,
                                args.predictions_dir, args.submission_dir, args.cpu):
        print(json.dumps(report), flush=True)


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

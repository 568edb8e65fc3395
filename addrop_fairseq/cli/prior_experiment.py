"""The prior attribution experiment (paper section 2.2, Fig. 2): the same fine-tuning with four
dropping strategies at one rate (none, random, low, high; gold-label GA target, first layer),
same seeds; training and dev loss per epoch for the four, in two panels, and a table.

    addrop-prior-experiment examples/ner/compare/ner200.yaml --rate 0.3 --layers 0 \\
        --seeds 1,2,3 --out docs/results/prior-ner200 --work-dir runs/prior/ner200 --jobs 2

The base spec (addrop-compare's format; its arms and grid are ignored) gives the data, the
shared training options, the dev metric and the test. The four arms (addrop_fairseq/analysis/
prior.py says what the rate means for each) run through addrop-compare's runner: OUT holds
results.jsonl, summary.md and curves.png as for any comparison, plus prior.png (the two panels),
prior.md (the table) and prior.json (the plotted means). Rerun the same command after a kill:
finished runs are kept.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="base YAML or JSON spec (data, train, select, test, seeds)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--work-dir", type=Path, help="runs' logs and checkpoints (default OUT/runs)")
    parser.add_argument("--rate", type=float, default=0.3, help="share of each row's keys dropped")
    parser.add_argument("--layers", default="0", help="--addrop-layers of the dropping arms")
    parser.add_argument("--modules", dest="kinds", metavar="KINDS",
                        help="--addrop-modules of the dropping arms (default: the criterion's, "
                        "e.g. encoder_self,decoder_self for translation)")
    parser.add_argument("--seeds", help="comma-separated; overrides the spec's")
    parser.add_argument("--no-valid-on-train", action="store_true",
                        help="skip evaluating the training split each epoch (then the training "
                        "panel shows only the logged, masked loss)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="rewrite the outputs, run nothing")
    args = parser.parse_args(argv)
    from addrop_fairseq.analysis.prior import prior_experiment

    if not args.report_only:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        prior_experiment(args.spec, args.out, args.work_dir, args.rate, args.layers, args.kinds,
                         args.seeds, valid_on_train=not args.no_valid_on_train, jobs=args.jobs,
                         threads=args.threads, keep_checkpoints=args.keep_checkpoints,
                         retry_failed=args.retry_failed, report_only=args.report_only)
    except KeyboardInterrupt:
        print("prior_experiment: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    png = args.out / "prior.png"
    print(f"prior_experiment: {png if png.exists() else 'no finished run yet, no picture'}; "
          f"table {args.out / 'prior.md'}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

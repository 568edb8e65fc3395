"""Plain fine-tuning against AD-DROP (or any arms) over seeds: train, select on dev, test, compare.

    addrop-compare examples/ner/compare/ner200.yaml --out results/ner200 --jobs 2

runs every (arm, seed) of the spec as its own fairseq-train process (JSON logs, checkpoint chosen
on the spec's dev metric), evaluates the chosen checkpoint on the test split, and writes
OUT/results.jsonl (one record per run), OUT/summary.md (mean +- std per arm; each arm minus the
baseline on the same seeds with a 95% t interval) and OUT/curves.png (plus heatmap_{dev,test}.png
for a p x q grid). Rerun the same command after a kill: finished runs are skipped, a run cut short
resumes from its checkpoint_last.pt, and its record's times add those of the attempts killed
before (kept in the run directory's attempts.json). The spec format is in
addrop_fairseq/experiment/spec.py; the same can be given as flags (--data, --train,
--arm NAME=OPTIONS, --grid "p=0.1,0.3 q=0.1,0.3").
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment.runner import Comparison
from addrop_fairseq.experiment.spec import build_spec, load_spec, parse_grid_flag
from addrop_fairseq.cli.policy import run


def spec_from_flags(args) -> dict:
    arms = {}
    for item in args.arm or []:
        name, sep, options = item.partition("=")
        if not sep or not name:
            raise AddropError(
                f"--arm {item!r}: expected NAME=OPTIONS, e.g. plain='--addrop-schedule off'"
            )
        arms[name] = options
    raw = {
        "data": args.data,
        "train": args.train or "",
        "arms": arms,
        "select": {"metric": args.select_metric, "maximize": args.maximize},
        "test": {"kind": args.test_kind, "split": "test"},
        "valid_on_train": args.valid_on_train,
    }
    if args.grid:
        raw["grid"] = {"options": args.grid_options or "", **parse_grid_flag(args.grid)}
    if args.baseline:
        raw["baseline"] = args.baseline
    return raw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", nargs="?", help="YAML or JSON spec (or give the flags below)")
    parser.add_argument("--out", required=True, type=Path, help="results.jsonl, summary.md, PNGs")
    parser.add_argument(
        "--work-dir", type=Path, help="logs and checkpoints of each run (default OUT/runs)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads per run")
    parser.add_argument("--seeds", help="comma-separated; overrides the spec's")
    parser.add_argument("--only", help="comma-separated arm names to run (others are reported)")
    parser.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each run's checkpoints (default: deleted after the test)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite summary.md and the plots from results.jsonl; run nothing",
    )
    flags = parser.add_argument_group("a spec as flags (without a spec file)")
    flags.add_argument("--data")
    flags.add_argument("--train", help="fairseq-train options every arm shares (one string)")
    flags.add_argument("--arm", action="append", help="NAME=OPTIONS, repeatable")
    flags.add_argument("--grid", help='e.g. "p=0.1,0.3,0.5 q=0.1,0.3": one arm per combination')
    flags.add_argument("--grid-options", help="options shared by the grid's arms")
    flags.add_argument(
        "--baseline",
        help="the arm the others are paired with; with a spec, a report against this arm "
        "instead of the spec's baseline, in OUT/summary-vs-ARM.md",
    )
    flags.add_argument("--select-metric", default="loss")
    flags.add_argument("--maximize", action="store_true")
    flags.add_argument(
        "--test-kind", default="none", choices=["ner", "translation", "glue", "none"]
    )
    flags.add_argument(
        "--valid-on-train",
        action="store_true",
        help="also evaluate the training split each epoch (unmasked train loss)",
    )
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec) if args.spec else build_spec(spec_from_flags(args), "flags")
        if args.baseline:
            spec.arm(args.baseline, "--baseline")
        if args.seeds:
            try:
                spec.seeds = [int(s) for s in args.seeds.split(",")]
            except ValueError:
                raise AddropError(
                    f"--seeds {args.seeds!r}: expected comma-separated integers"
                ) from None
        if args.only:
            names = args.only.split(",")
            unknown = [n for n in names if n not in {a.name for a in spec.arms}]
            if unknown:
                raise AddropError(
                    f"--only: {', '.join(unknown)} not among the arms "
                    f"({', '.join(a.name for a in spec.arms)})"
                )
        comparison = Comparison(
            spec,
            args.out,
            args.work_dir,
            jobs=args.jobs,
            threads=args.threads,
            keep_checkpoints=args.keep_checkpoints,
            retry_failed=args.retry_failed,
        )
        summary = comparison.summary_path(args.baseline)
        if args.report_only:
            comparison.report(args.baseline)
        else:
            if args.only:
                comparison.restrict(args.only.split(","))
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            comparison.run()
            if args.baseline:
                comparison.report(args.baseline)
    except KeyboardInterrupt:  # AddropError is policy.run's: "addrop-compare: error: ..."
        print("compare: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"compare: {summary}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

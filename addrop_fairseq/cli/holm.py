"""How many comparisons each study's reading rests on, and which survive Holm's correction.

    python -m addrop_fairseq.cli.holm docs/results/families.yaml --out docs/results/holm.md

reads each study's finished runs (the results.jsonl files the family file names, relative to
its directory), computes every comparison's difference, 95% interval and t-test p-value, and
adjusts the p-values over the study's family with Holm's step-down method. The family file's
format is in addrop_fairseq/experiment/families.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from addrop_fairseq.atomic import write_text
from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="addrop-holm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("families", type=Path, help="the family file (YAML)")
    parser.add_argument("--out", type=Path, help="write the tables here (default: print them)")
    args = parser.parse_args(argv)
    from addrop_fairseq.experiment.families import families_markdown

    text = families_markdown(args.families)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    header = (
        f"<!-- written by `addrop-holm {args.families} --out {args.out}`; "
        "do not edit -->\n\n"
    )
    write_text(args.out, header + text)
    print(f"addrop-holm: {args.out}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""The GLUE tables of docs/results.md: every run under both protocols, beside the paper's gains.

    addrop-protocol-report          # from the repository root: the defaults below

reads the effects file (the studies, their labels and the paper's numbers; format in
addrop_fairseq/experiment/protocol_report.py) and the committed results.jsonl of every study whose
spec has a report split, and writes the tables between the document's
`<!-- protocol-report:start -->` and `<!-- protocol-report:end -->` markers (the rest of the
document is kept; it is replaced whole, in one step). --out writes the tables alone instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from addrop_fairseq.atomic import write_text
from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="addrop-protocol-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "effects", type=Path, nargs="?", default=Path("docs/results/effects.yaml"),
        help="the effects file (YAML; default: %(default)s)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--into", type=Path, default=Path("docs/results.md"),
        help="the document to write the tables into, between its markers (default: %(default)s)",
    )
    where.add_argument("--out", type=Path, help="write the tables alone to this file instead")
    args = parser.parse_args(argv)
    from addrop_fairseq.errors import AddropError
    from addrop_fairseq.experiment import protocol_report

    target = args.out or args.into
    command = f"addrop-protocol-report {args.effects} " + (
        f"--out {args.out}" if args.out else f"--into {args.into}")
    studies = protocol_report.collect(args.effects)
    text = protocol_report.report(studies, command, protocol_report.linker(target))
    if not args.out:
        try:
            document = args.into.read_text(encoding="utf-8")
        except OSError as error:
            raise AddropError(f"{args.into}: cannot read it ({error.strerror})") from None
        text = protocol_report.insert(document, text, str(args.into))
    write_text(target, text)
    print(f"addrop-protocol-report: {target}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""The results at a glance: the forest plot and the summary table of AD-DROP against plain.

    addrop-effects                 # from the repository root: the defaults below

reads the effects file (which arms of which committed study to show; its format is in
addrop_fairseq/experiment/effects.py), pairs each arm with plain seed by seed on the study's
test metric, and writes the table (markdown, for the README) and the forest plot (PNG). Both
are replaced whole, and only once both are made.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from addrop_fairseq.atomic import replacing
from addrop_fairseq.cli.policy import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="addrop-effects",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "effects", type=Path, nargs="?", default=Path("docs/results/effects.yaml"),
        help="the effects file (YAML; default: %(default)s)",
    )
    parser.add_argument(
        "--markdown", type=Path, default=Path("docs/results/effects.md"),
        help="the summary table (default: %(default)s)",
    )
    parser.add_argument(
        "--plot", type=Path, default=Path("docs/img/effects.png"),
        help="the forest plot (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    from addrop_fairseq.experiment import effects, plots

    result = effects.collect(args.effects)
    command = (
        f"addrop-effects {args.effects} --markdown {args.markdown} --plot {args.plot}"
    )
    text = effects.effects_markdown(result, command)
    panels = {
        unit: [
            (
                f"{e.study}: {e.row_label} ({e.difference.n} seeds)", e.kind,
                e.difference.mean, e.difference.low, e.difference.high,
            )
            for e in rows
        ]
        for unit, rows in effects.effects_by_unit(result).items()
    }
    with replacing(args.plot, args.markdown) as (tmp_plot, tmp_text):
        plots.plot_forest(
            panels, tmp_plot,
            title="AD-DROP minus plain on the test metric, paired by seed, 95% t interval",
        )
        tmp_text.write_text(text, encoding="utf-8")
    print(f"addrop-effects: {args.markdown}, {args.plot}")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""Quick start: English->Romanian on the bundled LibreOffice strings (MPL-2.0; shipped in the
package as addrop_fairseq/data/samples/quickstart).

Prepares the data, trains a small transformer from scratch with AD-DROP cross-tuning on the CPU
(the packaged recipe ``quickstart``), translates the test set with beam 4 and
scores it with sacrebleu. The terminal gets one line a stage and one line an epoch; everything
the tools print goes to WORKDIR/{prepare,train,translate}.log.

Usage: addrop-quickstart [WORKDIR] [EPOCHS] [hydra overrides of the recipe, e.g. criterion.addrop_p=0.2]
"""
import argparse
from pathlib import Path

from addrop_fairseq.cli.policy import run
from addrop_fairseq.experiment.quickstart import run_quickstart


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="addrop-quickstart", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", nargs="?", type=Path, default=Path("runs/quickstart"),
                        help="where the data, checkpoints and logs go (default: runs/quickstart)")
    parser.add_argument("epochs", nargs="?", type=int, default=12, help="default: 12")
    parser.add_argument("overrides", nargs="*",
                        help="hydra overrides of the recipe, e.g. criterion.addrop_p=0.2")
    args = parser.parse_args(argv)
    return run_quickstart(args.work, args.epochs, args.overrides)


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

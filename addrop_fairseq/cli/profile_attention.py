"""Where AD-DROP's per-layer cost goes: one attention module, forward and backward, by part
(the settings timed: addrop_fairseq/benchmark/profile.py).

    addrop-profile-attention --shapes 2x256,1x512

To compare two commits, run ``python -m addrop_fairseq.cli.profile_attention`` with each
checkout (of this layout or later) first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import warnings

from addrop_fairseq.benchmark.profile import profile_attention
from addrop_fairseq.cli.policy import run


def shapes(value: str):
    """``BATCHxLENGTH,...`` as (batch, length) pairs."""
    try:
        pairs = [tuple(int(v) for v in shape.split("x")) for shape in value.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"{value!r}: expected BATCHxLENGTH,... e.g. 2x256,1x512")
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=shapes, default="16x32,2x256,1x512",
                        help="BATCHxLENGTH,...")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    profile_attention(args.shapes, args.reps, args.threads)


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

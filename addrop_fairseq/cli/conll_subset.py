"""The first N sentences of a CoNLL file, lines unchanged (-DOCSTART- lines dropped).

addrop-conll-subset data/conll2003/train.txt 200 data/conll2003-200/train.txt
"""

import argparse
import sys
from pathlib import Path

from addrop_fairseq.cli.policy import command_name, run
from addrop_fairseq.data.ner import first_sentences


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("count", type=int)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    copied = first_sentences(args.source, args.dest, args.count)
    if copied < args.count:
        print(f"{command_name(main)}: {args.source} has only {copied} sentences", file=sys.stderr)
    print(f"{args.dest}: {copied} sentences")
    return 0


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

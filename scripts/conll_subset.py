#!/usr/bin/env python
"""The first N sentences of a CoNLL file, lines unchanged (-DOCSTART- lines dropped).

python scripts/conll_subset.py data/conll2003/train.txt 200 data/conll2003-200/train.txt
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout without installing

from addrop_fairseq.errors import AddropError  # noqa: E402
from addrop_fairseq.ner_data import first_sentences  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("count", type=int)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        args.dest.parent.mkdir(parents=True, exist_ok=True)
        copied = first_sentences(args.source, args.dest, args.count)
    except AddropError as error:
        print(f"conll_subset: error: {error}", file=sys.stderr)
        return 1
    if copied < args.count:
        print(f"conll_subset: {args.source} has only {copied} sentences", file=sys.stderr)
    print(f"{args.dest}: {copied} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Downloads WMT16 EN-RO or TR-EN as plain text (needs the internet and `pip install datasets`).

Writes DEST/{train,valid,test}.{src,tgt}: the training corpus from the Hugging Face hub's
`wmt/wmt16` (Europarl + SETimes for EN-RO, SETimes for TR-EN), newsdev2016 as valid and
newstest2016 as test (the sets the paper reports). Then run addrop-prepare-translation on
them (see examples/translation/README.md).
"""
import argparse
from pathlib import Path

from addrop_fairseq.cli.policy import run
from addrop_fairseq.data.wmt16 import download_wmt16


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-lang", "-s", required=True)
    parser.add_argument("--target-lang", "-t", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    args = parser.parse_args(argv)
    download_wmt16(args.source_lang, args.target_lang, args.dest)


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""Parallel text -> sentencepiece -> fairseq binary data, ready for ``--task addrop_translation``.

Either give the splits (``--train PREFIX --valid PREFIX [--test PREFIX]``, files PREFIX.SRC and
PREFIX.TGT) or one corpus to split deterministically (``--corpus PREFIX --valid-size N
--test-size N``). Writes DEST/raw (plain text splits), DEST/spm.model, DEST/spm (encoded text)
and DEST/bin (fairseq-preprocess output, joined dictionary). DEST is written whole or not at
all: an existing non-empty DEST is refused unless --force, which replaces it whole.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from addrop_fairseq.cli.policy import run
from addrop_fairseq.data.translation_prepare import prepare_translation


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-lang", "-s", required=True)
    parser.add_argument("--target-lang", "-t", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--train", help="prefix of the training files")
    parser.add_argument("--valid", help="prefix of the validation files")
    parser.add_argument("--test", help="prefix of the test files")
    parser.add_argument("--corpus", help="prefix of one corpus to split into train/valid/test")
    parser.add_argument("--valid-size", type=int, default=300)
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--split-seed", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=8000,
                        help="joint sentencepiece vocabulary size")
    parser.add_argument("--spm-model", help="encode with this sentencepiece model "
                        "instead of training one (e.g. a converted OPUS-MT model's source.spm)")
    parser.add_argument("--target-spm-model", help="a separate sentencepiece model for the "
                        "target side (OPUS-MT's target.spm); default: --spm-model")
    parser.add_argument("--srcdict", help="use this fairseq dictionary (joined) instead of "
                        "building one")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--force", action="store_true",
                        help="replace an existing non-empty --dest whole")
    args = parser.parse_args(argv)  # named as prepare_translation's parameters
    prepare_translation(**vars(args))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

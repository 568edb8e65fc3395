"""Downloads WMT16 EN-RO or TR-EN as plain text (needs the internet and `pip install datasets`).

Writes DEST/{train,valid,test}.{src,tgt}: the training corpus from the Hugging Face hub's
`wmt/wmt16` (Europarl + SETimes for EN-RO, SETimes for TR-EN), newsdev2016 as valid and
newstest2016 as test (the sets the paper reports). Then run addrop-prepare-translation on
them (see examples/translation/README.md).
"""
import argparse
import sys
from pathlib import Path
from addrop_fairseq.cli.policy import run

PAIRS = {"en-ro": "ro-en", "ro-en": "ro-en", "tr-en": "tr-en", "en-tr": "tr-en"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-lang", "-s", required=True)
    parser.add_argument("--target-lang", "-t", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    args = parser.parse_args(argv)
    pair = f"{args.source_lang}-{args.target_lang}"
    if pair not in PAIRS:
        sys.exit(f"download_wmt16: error: pair {pair!r} is not in WMT16 here; allowed: {sorted(PAIRS)}")
    try:
        from datasets import load_dataset
    except ImportError:
        sys.exit("download_wmt16: error: needs the 'datasets' package: pip install datasets")
    corpus = load_dataset("wmt/wmt16", PAIRS[pair])
    args.dest.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        rows = corpus[split]["translation"]
        for lang in (args.source_lang, args.target_lang):
            with open(args.dest / f"{name}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(" ".join(row[lang].split()) + "\n" for row in rows)
        print(f"{name}: {len(rows)} pairs")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

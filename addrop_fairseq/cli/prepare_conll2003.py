"""CoNLL-2003 (or any CoNLL-format NER data) -> fairseq data for ``--task addrop_tagging``.

Input, one of:
  --conll-dir DIR      the original files: train.txt valid.txt test.txt (or eng.train eng.testa
                       eng.testb), 4 columns (word POS chunk NER), -DOCSTART- lines, blank lines
                       between sentences; IOB1 tags are converted to BIO2 (BIO2 passes unchanged)
  --train/--valid/--test FILE   the same format, files named one by one
  --hf-dump DIR        a Hugging Face `conll2003` dump: train.jsonl validation.jsonl test.jsonl
                       (Dataset.to_json), tokens + integer ner_tags
Subword tokenizer, one of:
  --tokenizer sentencepiece   train one on the training words (--vocab-size) or use --spm-model
  --tokenizer whitespace      every word a token; words seen fewer than --min-count times -> <unk>
  --tokenizer huggingface --hf-tokenizer DIR [--dict DICT]   a pretrained encoder's tokenizer
                       (local files only) and the fairseq dictionary of its converted checkpoint
Writes DEST/raw/SPLIT.conll (words and BIO2 tags), DEST/input (subword ids + dict.txt),
DEST/pieces (subwords per word), DEST/label (label ids + dict.txt) and DEST/tokenizer.json.
DEST is written whole or not at all: an existing non-empty DEST is refused unless --force, which
replaces it whole (so no split of an earlier run survives beside new dictionaries).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from addrop_fairseq.cli.policy import run
from addrop_fairseq.data.ner_prepare import TOKENIZERS, prepare_conll2003


def column_count(text: str) -> int:
    """--columns: a word line needs a word and a tag, so 1 could only fail at the first line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value == 1 or value < 0:
        raise argparse.ArgumentTypeError(f"{value}: a word line has at least 2 columns (word ... "
                                         "tag); give 2 or more, or 0 for any consistent count")
    return value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", required=True, type=Path)
    source = parser.add_argument_group("input")
    source.add_argument("--conll-dir")
    source.add_argument("--train")
    source.add_argument("--valid")
    source.add_argument("--test")
    source.add_argument("--hf-dump", help="directory of a Hugging Face conll2003 JSON-lines dump")
    source.add_argument("--columns", type=column_count, default=4,
                        help="columns per word line (CoNLL-2003: 4); 0 accepts any count that is "
                        "the same on every line")
    tok = parser.add_argument_group("tokenizer")
    tok.add_argument("--tokenizer", choices=TOKENIZERS, default="sentencepiece")
    tok.add_argument("--spm-model", help="an existing sentencepiece model (default: train one)")
    tok.add_argument("--vocab-size", type=int, default=8000)
    tok.add_argument("--min-count", type=int, default=2,
                     help="whitespace tokenizer: rarer training words become <unk>")
    tok.add_argument("--hf-tokenizer", help="directory of a Hugging Face tokenizer (local files)")
    tok.add_argument("--dict", dest="dict_file", metavar="DICT",
                     help="fairseq dictionary to use (e.g. the dict.txt written by "
                     "addrop-convert-hf-encoder next to the converted checkpoint)")
    parser.add_argument("--max-positions", type=int, default=512,
                        help="warn about sentences longer than this in subwords (<s>, </s> included)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--force", action="store_true",
                        help="replace an existing non-empty --dest whole")
    args = parser.parse_args(argv)  # named as prepare_conll2003's parameters
    prepare_conll2003(**vars(args))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

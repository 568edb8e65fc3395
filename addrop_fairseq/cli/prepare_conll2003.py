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
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.output_dir import check_dest, staged_dest
from addrop_fairseq.data.ner import (
    HuggingFaceTokenizer,
    SentencePieceTokenizer,
    TaggedSentence,
    WhitespaceTokenizer,
    iob1_to_bio2,
    read_conll,
    read_hf_dump,
    write_conll,
)
from addrop_fairseq.cli.policy import run

SPLITS = ("train", "valid", "test")
CONLL_NAMES = {"train": ("train.txt", "eng.train"), "valid": ("valid.txt", "eng.testa", "dev.txt"),
               "test": ("test.txt", "eng.testb")}
HF_NAMES = {"train": ("train.jsonl", "train.json"),
            "valid": ("validation.jsonl", "validation.json", "valid.jsonl"),
            "test": ("test.jsonl", "test.json")}


def fail(message: str) -> None:
    sys.exit(f"prepare_conll2003: error: {message}")


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


def find(directory: Path, names) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def read_splits(args) -> Dict[str, List[TaggedSentence]]:
    columns = args.columns or None
    if args.hf_dump:
        files = {split: find(Path(args.hf_dump), HF_NAMES[split]) for split in SPLITS}
        reader = read_hf_dump
    else:
        if args.conll_dir:
            files = {split: find(Path(args.conll_dir), CONLL_NAMES[split]) for split in SPLITS}
        else:
            files = {"train": args.train, "valid": args.valid, "test": args.test}
        files = {split: Path(path) if path else None for split, path in files.items()}

        def reader(path):
            return read_conll(path, columns)
    for split in ("train", "valid"):
        if files[split] is None:
            names = HF_NAMES[split] if args.hf_dump else CONLL_NAMES[split]
            fail(f"no {split} file found (looked for {', '.join(names)})")
    return {split: reader(path) for split, path in files.items() if path is not None}


def to_bio2(splits) -> int:
    changed = 0
    for sentences in splits.values():
        for sentence in sentences:
            converted = iob1_to_bio2(sentence.tags)
            changed += sum(a != b for a, b in zip(converted, sentence.tags))
            sentence.tags = converted
    return changed


def label_dictionary(splits):
    from fairseq.data import Dictionary

    counts = Counter(tag for sentence in splits["train"] for tag in sentence.tags)
    labels = Dictionary()
    for tag, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        labels.add_symbol(tag, n=count)
    for split, sentences in splits.items():
        for sentence in sentences:
            for index, tag in enumerate(sentence.tags):
                if tag not in counts:
                    raise AddropError(f"{sentence.where(index)}: label {tag!r} of the {split} split "
                                      f"never occurs in training (labels: {', '.join(sorted(counts))})")
    return labels


def build_tokenizer(args, dest: Path, train: List[TaggedSentence]):
    """Returns (tokenizer, record) where record says how to rebuild it."""
    if args.tokenizer == "whitespace":
        return WhitespaceTokenizer(), {"kind": "whitespace"}
    if args.tokenizer == "sentencepiece":
        model = dest / "spm.model"
        if args.spm_model:
            shutil.copyfile(args.spm_model, model)
        else:
            import sentencepiece as spm

            text = dest / "raw" / "train.spm-input.txt"
            text.write_text("".join(" ".join(s.words) + "\n" for s in train), encoding="utf-8")
            # byte fallback: any character maps to pieces, so every word round-trips exactly
            try:
                spm.SentencePieceTrainer.train(
                    input=str(text), model_prefix=str(dest / "spm"), vocab_size=args.vocab_size,
                    model_type="unigram", character_coverage=1.0, byte_fallback=True,
                    hard_vocab_limit=False, num_threads=args.workers, minloglevel=2,
                )
            except RuntimeError as error:  # e.g. a vocabulary smaller than the 256 byte pieces
                raise AddropError(f"--vocab-size {args.vocab_size}: sentencepiece training "
                                  f"failed: {str(error).strip().splitlines()[-1]}") from None
            finally:
                text.unlink()
        return SentencePieceTokenizer(model), {"kind": "sentencepiece", "model": "spm.model"}
    if not args.hf_tokenizer:
        fail("--tokenizer huggingface needs --hf-tokenizer DIR")
    return HuggingFaceTokenizer(args.hf_tokenizer), {"kind": "huggingface",
                                                     "directory": str(Path(args.hf_tokenizer).resolve())}


def input_dictionary(args, tokenizer, tokenized_train):
    """The fairseq dictionary of the subwords, and a function piece-list -> ids."""
    from fairseq.data import Dictionary

    if args.dict:
        dictionary = Dictionary.load(args.dict)
    elif tokenizer.kind == "huggingface":
        dictionary = Dictionary()
        for token in tokenizer.vocabulary():
            if token not in tokenizer.special_tokens:
                dictionary.add_symbol(token)
    else:
        counts = Counter(piece for sentence in tokenized_train for word in sentence for piece in word)
        dictionary = Dictionary()
        if tokenizer.kind == "sentencepiece":
            control = {"<unk>", "<s>", "</s>", "<pad>"}
            for piece in tokenizer.vocabulary():
                if piece not in control:
                    dictionary.add_symbol(piece, n=counts.get(piece, 0))
        else:
            for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                if count >= args.min_count:
                    dictionary.add_symbol(word, n=count)

    by_hf_id = False
    if args.dict and tokenizer.kind == "huggingface":
        # a RoBERTa/GPT-2 style dict.txt lists token ids, not token strings
        symbols = dictionary.symbols[dictionary.nspecial:]
        by_hf_id = bool(symbols) and all(s.isdigit() for s in symbols if not s.startswith("madeupword"))
    unk_token = getattr(getattr(tokenizer, "tokenizer", None), "unk_token", None)

    def encode(pieces, hf_ids=None) -> List[int]:
        if by_hf_id:
            return [dictionary.index(str(i)) for i in hf_ids]
        return [dictionary.unk() if piece == unk_token else dictionary.index(piece) for piece in pieces]

    return dictionary, encode


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
    tok.add_argument("--tokenizer", choices=("sentencepiece", "whitespace", "huggingface"),
                     default="sentencepiece")
    tok.add_argument("--spm-model", help="an existing sentencepiece model (default: train one)")
    tok.add_argument("--vocab-size", type=int, default=8000)
    tok.add_argument("--min-count", type=int, default=2,
                     help="whitespace tokenizer: rarer training words become <unk>")
    tok.add_argument("--hf-tokenizer", help="directory of a Hugging Face tokenizer (local files)")
    tok.add_argument("--dict", help="fairseq dictionary to use (e.g. the dict.txt written by "
                     "addrop-convert-hf-encoder next to the converted checkpoint)")
    parser.add_argument("--max-positions", type=int, default=512,
                        help="warn about sentences longer than this in subwords (<s>, </s> included)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--force", action="store_true",
                        help="replace an existing non-empty --dest whole")
    args = parser.parse_args(argv)
    if sum(bool(x) for x in (args.conll_dir, args.hf_dump, args.train)) != 1:
        fail("give exactly one of --conll-dir, --hf-dump or --train/--valid[/--test]")
    if args.tokenizer != "huggingface" and args.hf_tokenizer:
        fail("--hf-tokenizer needs --tokenizer huggingface")
    for option, given in (("--spm-model", args.spm_model), ("--dict", args.dict)):
        if given and not Path(given).is_file():
            fail(f"{option} {given}: no such file")

    try:
        check_dest(args.dest, args.force)
        splits = read_splits(args)
        changed = to_bio2(splits)
        labels = label_dictionary(splits)
        with staged_dest(args.dest, args.force) as dest:
            dictionary = write_data(args, dest, splits, labels)
    except AddropError as error:
        fail(str(error))
    print(f"labels: {', '.join(labels.symbols[labels.nspecial:])}; {changed} IOB1 tags -> BIO2")
    print(f"fairseq data in {args.dest} ({len(dictionary)} input types)")


def write_data(args, dest: Path, splits, labels):
    """Everything under DEST, written into ``dest`` (the staging directory)."""
    from fairseq.data import indexed_dataset
    import torch

    for sub in ("raw", "input", "pieces", "label"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        write_conll(dest / "raw" / f"{split}.conll",
                    [list(zip(s.words, s.tags)) for s in sentences])
    tokenizer, record = build_tokenizer(args, dest, splits["train"])
    tokenized = {}
    hf_ids = {}
    for split, sentences in splits.items():
        if tokenizer.kind == "huggingface":
            pairs = [tokenizer.split_with_ids(s.words) for s in sentences]
            tokenized[split] = [p for p, _ in pairs]
            hf_ids[split] = [i for _, i in pairs]
        else:
            tokenized[split] = [tokenizer.split(s.words) for s in sentences]
    dictionary, encode = input_dictionary(args, tokenizer, tokenized["train"])

    dictionary.save(str(dest / "input" / "dict.txt"))
    labels.save(str(dest / "label" / "dict.txt"))
    (dest / "tokenizer.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    for split, sentences in splits.items():
        builders = {
            "input": indexed_dataset.make_builder(str(dest / "input" / f"{split}.bin"), "mmap",
                                                  vocab_size=len(dictionary)),
            "pieces": indexed_dataset.make_builder(str(dest / "pieces" / f"{split}.bin"), "mmap",
                                                   vocab_size=65535),
            "label": indexed_dataset.make_builder(str(dest / "label" / f"{split}.bin"), "mmap",
                                                  vocab_size=len(labels)),
        }
        n_subwords = n_unk = longest = empty_words = 0
        for number, sentence in enumerate(sentences):
            ids, counts = [], []
            word_ids = hf_ids[split][number] if split in hf_ids else [None] * len(sentence.words)
            for pieces, piece_ids in zip(tokenized[split][number], word_ids):
                encoded = encode(pieces, piece_ids) if pieces else []
                if not encoded:  # a word the tokenizer drops entirely still needs a position
                    encoded, empty_words = [dictionary.unk()], empty_words + 1
                ids.extend(encoded)
                counts.append(len(encoded))
            n_subwords += len(ids)
            n_unk += sum(i == dictionary.unk() for i in ids)
            longest = max(longest, len(ids) + 2)
            builders["input"].add_item(torch.IntTensor(ids))
            builders["pieces"].add_item(torch.IntTensor(counts))
            builders["label"].add_item(torch.IntTensor([labels.index(t) for t in sentence.tags]))
        for kind, builder in builders.items():
            builder.finalize(str(dest / kind / f"{split}.idx"))
        words = sum(len(s.words) for s in sentences)
        print(f"{split}: {len(sentences)} sentences, {words} words, {n_subwords} subwords "
              f"({100 * n_unk / max(n_subwords, 1):.2f}% <unk>), longest {longest} with <s> </s>"
              + (f", {empty_words} words without subwords -> <unk>" if empty_words else ""))
        if longest > args.max_positions:
            print(f"warning: {split} has sentences longer than --max-positions {args.max_positions}; "
                  "training skips them only with --skip-invalid-size-inputs-valid-test")
    return dictionary


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

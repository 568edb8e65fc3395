"""CoNLL-2003 (or any CoNLL-format NER data) -> fairseq data for ``--task addrop_tagging``
(addrop-prepare-conll2003).

Writes DEST/raw/SPLIT.conll (words and BIO2 tags), DEST/input (subword ids + dict.txt),
DEST/pieces (subwords per word), DEST/label (label ids + dict.txt) and DEST/tokenizer.json.
DEST is written whole or not at all (``output_dir``), so no split of an earlier run survives
beside new dictionaries.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import AddropError
from .ner import TaggedSentence, iob1_to_bio2, read_conll, read_hf_dump, write_conll
from .output_dir import check_dest, staged_dest
from .tokenizers import (
    HFWordTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WhitespaceTokenizer,
    train_sentencepiece,
)

SPLITS = ("train", "valid", "test")
CONLL_NAMES = {"train": ("train.txt", "eng.train"), "valid": ("valid.txt", "eng.testa", "dev.txt"),
               "test": ("test.txt", "eng.testb")}
HF_NAMES = {"train": ("train.jsonl", "train.json"),
            "valid": ("validation.jsonl", "validation.json", "valid.jsonl"),
            "test": ("test.jsonl", "test.json")}
TOKENIZERS = ("sentencepiece", "whitespace", "huggingface")


def find(directory: Path, names) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def read_splits(conll_dir=None, files: Optional[Dict[str, Optional[str]]] = None, hf_dump=None,
                columns: Optional[int] = 4) -> Dict[str, List[TaggedSentence]]:
    """The splits of a CoNLL directory, of named CoNLL files (``files``: split -> path or None)
    or of a Hugging Face dump; train and valid are required."""
    if hf_dump:
        paths = {split: find(Path(hf_dump), HF_NAMES[split]) for split in SPLITS}
        reader = read_hf_dump
    else:
        if conll_dir:
            paths = {split: find(Path(conll_dir), CONLL_NAMES[split]) for split in SPLITS}
        else:
            paths = {split: Path(path) if path else None for split, path in files.items()}

        def reader(path):
            return read_conll(path, columns)
    for split in ("train", "valid"):
        if paths.get(split) is None:
            names = HF_NAMES[split] if hf_dump else CONLL_NAMES[split]
            raise AddropError(f"no {split} file found (looked for {', '.join(names)})")
    return {split: reader(path) for split, path in paths.items() if path is not None}


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


def build_tokenizer(kind: str, dest: Path, train: List[TaggedSentence], *, spm_model=None,
                    vocab_size: int = 8000, hf_tokenizer=None, workers: int = 1):
    """Returns (tokenizer, record) where record says how to rebuild it."""
    if kind == "whitespace":
        return WhitespaceTokenizer(), {"kind": "whitespace"}
    if kind == "sentencepiece":
        model = dest / "spm.model"
        if spm_model:
            shutil.copyfile(spm_model, model)
            model = spm_model  # a bad model is named as the user gave it
        else:
            text = dest / "raw" / "train.spm-input.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text("".join(" ".join(s.words) + "\n" for s in train), encoding="utf-8")
            try:
                train_sentencepiece([text], dest / "spm", vocab_size, workers)
            finally:
                text.unlink()
        return (SentencePieceTokenizer(model, option="--spm-model"),
                {"kind": "sentencepiece", "model": "spm.model"})
    return HFWordTokenizer(hf_tokenizer), {"kind": "huggingface",
                                           "directory": str(Path(hf_tokenizer).resolve())}


def input_dictionary(tokenizer: Tokenizer, tokenized_train, dict_file=None, min_count: int = 2):
    """The fairseq dictionary of the subwords, and a function piece-list -> ids."""
    from fairseq.data import Dictionary

    if dict_file:
        dictionary = Dictionary.load(dict_file)
    elif tokenizer.kind == "huggingface":
        dictionary = Dictionary()
        for token in tokenizer.vocabulary():
            dictionary.add_symbol(token)
    else:
        counts = Counter(piece for sentence in tokenized_train for word in sentence for piece in word)
        dictionary = Dictionary()
        if tokenizer.kind == "sentencepiece":
            for piece in tokenizer.vocabulary():
                dictionary.add_symbol(piece, n=counts.get(piece, 0))
        else:
            for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                if count >= min_count:
                    dictionary.add_symbol(word, n=count)

    by_hf_id = False
    if dict_file and tokenizer.kind == "huggingface":
        # a RoBERTa/GPT-2 style dict.txt lists token ids, not token strings
        symbols = dictionary.symbols[dictionary.nspecial:]
        by_hf_id = bool(symbols) and all(s.isdigit() for s in symbols if not s.startswith("madeupword"))
    unk_token = getattr(getattr(tokenizer, "tokenizer", None), "unk_token", None)

    def encode(pieces, hf_ids=None) -> List[int]:
        if by_hf_id:
            return [dictionary.index(str(i)) for i in hf_ids]
        return [dictionary.unk() if piece == unk_token else dictionary.index(piece) for piece in pieces]

    return dictionary, encode


def prepare_conll2003(dest, *, conll_dir=None, train=None, valid=None, test=None, hf_dump=None,
                      columns: Optional[int] = 4, tokenizer: str = "sentencepiece",
                      spm_model=None, vocab_size: int = 8000, min_count: int = 2,
                      hf_tokenizer=None, dict_file=None, max_positions: int = 512,
                      workers: int = 1, force: bool = False) -> None:
    """Writes DEST from one source: ``conll_dir``, ``hf_dump`` or the files ``train``/``valid``
    [/``test``]; ``columns`` None or 0 accepts any count that is the same on every line. Prints
    a line a split and a summary."""
    dest = Path(dest)
    columns = columns or None
    if sum(bool(x) for x in (conll_dir, hf_dump, train)) != 1:
        raise AddropError("give exactly one of --conll-dir, --hf-dump or --train/--valid[/--test]")
    if tokenizer not in TOKENIZERS:
        raise AddropError(f"--tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
    if tokenizer != "huggingface" and hf_tokenizer:
        raise AddropError("--hf-tokenizer needs --tokenizer huggingface")
    if tokenizer == "huggingface" and not hf_tokenizer:
        raise AddropError("--tokenizer huggingface needs --hf-tokenizer DIR")
    for option, given in (("--spm-model", spm_model), ("--dict", dict_file)):
        if given and not Path(given).is_file():
            raise AddropError(f"{option} {given}: no such file")

    check_dest(dest, force)
    splits = read_splits(conll_dir, {"train": train, "valid": valid, "test": test}, hf_dump,
                         columns)
    changed = to_bio2(splits)
    labels = label_dictionary(splits)
    with staged_dest(dest, force) as staging:
        subword_tokenizer, record = build_tokenizer(
            tokenizer, staging, splits["train"], spm_model=spm_model, vocab_size=vocab_size,
            hf_tokenizer=hf_tokenizer, workers=workers)
        dictionary = write_data(staging, splits, labels, subword_tokenizer, record, dict_file,
                                min_count, max_positions)
    print(f"labels: {', '.join(labels.symbols[labels.nspecial:])}; {changed} IOB1 tags -> BIO2")
    print(f"fairseq data in {dest} ({len(dictionary)} input types)")


def write_data(dest: Path, splits, labels, tokenizer: Tokenizer, record: dict, dict_file,
               min_count: int, max_positions: int):
    """Everything under DEST, written into ``dest`` (the staging directory)."""
    from fairseq.data import indexed_dataset
    import torch

    for sub in ("raw", "input", "pieces", "label"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        write_conll(dest / "raw" / f"{split}.conll",
                    [list(zip(s.words, s.tags)) for s in sentences])
    tokenized = {}
    hf_ids = {}
    for split, sentences in splits.items():
        if tokenizer.kind == "huggingface":
            pairs = [tokenizer.split_with_ids(s.words) for s in sentences]
            tokenized[split] = [p for p, _ in pairs]
            hf_ids[split] = [i for _, i in pairs]
        else:
            tokenized[split] = [tokenizer.symbols(s.words) for s in sentences]
    dictionary, encode = input_dictionary(tokenizer, tokenized["train"], dict_file, min_count)

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
        if longest > max_positions:
            print(f"warning: {split} has sentences longer than --max-positions {max_positions}; "
                  "training skips them only with --skip-invalid-size-inputs-valid-test")
    return dictionary

"""GLUE TSV files (or a Hugging Face ``glue`` JSON Lines dump) -> fairseq data for
``--task addrop_sentence_prediction``, tokenized the way the chosen pretrained model was
(addrop-prepare-glue).

Output (fairseq's sentence_prediction layout): DEST/input0 (and DEST/input1 for pairs) with
train/valid[/valid1]/test[/test1] .bin/.idx and dict.txt; DEST/label with the binarized class
labels and dict.txt (the task's labels in Hugging Face ClassLabel order) or, for STS-B, one score
per line in SPLIT.label; DEST/glue.json records the task, labels and the flags training needs.
DEST is written whole or not at all (``output_dir``).
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import AddropError
from . import glue
from .output_dir import check_dest, staged_dest
from .tokenizers import GPT2BPETokenizer, HFTextTokenizer, SentencePieceTokenizer, Tokenizer

# <s> A </s> </s> B </s> (RoBERTa) or [CLS] A [SEP] B [SEP] (BERT, ELECTRA): fairseq's
# sentence_prediction adds --init-token before input0 and --separator-token before input1, and
# every binarized segment ends with </s>
LAYOUTS = {"roberta": {"init_token": 0, "separator_token": 2},
           "bert": {"init_token": 0, "separator_token": None}}

# how each tokenizer's symbols are written in the dictionary, as glue.json records it
_SYMBOL_FORMS = {"sentencepiece": "pieces", "gpt2": "ids"}


def build_tokenizer(hf_tokenizer: Optional[str] = None, sentencepiece: Optional[str] = None,
                    gpt2_bpe: Optional[Sequence[str]] = None) -> Tokenizer:
    chosen = [bool(hf_tokenizer), bool(sentencepiece), bool(gpt2_bpe)]
    if sum(chosen) != 1:
        raise AddropError("give exactly one of --hf-tokenizer, --sentencepiece, --gpt2-bpe")
    if hf_tokenizer:
        return HFTextTokenizer(hf_tokenizer)
    if sentencepiece:
        return SentencePieceTokenizer(sentencepiece, option="--sentencepiece")
    return GPT2BPETokenizer(*gpt2_bpe)


def symbol_form(tokenizer: Tokenizer) -> str:
    return tokenizer.form if isinstance(tokenizer, HFTextTokenizer) else _SYMBOL_FORMS[tokenizer.kind]


def renamed_tokens(conversion: Path) -> Dict[str, str]:
    """addrop-convert-hf-encoder gives tokens that a fairseq dictionary cannot hold (empty,
    with whitespace, spelling a reserved symbol) placeholder names, recorded beside dict.txt."""
    if not conversion.is_file():
        return {}
    try:
        return dict(json.loads(conversion.read_text(encoding="utf-8")).get("renamed_tokens", {}))
    except (ValueError, AttributeError) as e:
        raise AddropError(f"{conversion}: not a conversion record ({e})") from None


def load_dictionary(dict_file: Optional[str], tokenizer: Tokenizer):
    from fairseq.data import Dictionary

    if dict_file:
        if not Path(dict_file).is_file():
            raise AddropError(f"--dict {dict_file}: no such file")
        try:
            dictionary = Dictionary.load(dict_file)
        except Exception as e:
            raise AddropError(f"--dict {dict_file}: not a fairseq dictionary ({e})") from None
        if isinstance(tokenizer, HFTextTokenizer):
            tokenizer.choose_form(set(dictionary.symbols[dictionary.nspecial:]),
                                  renamed_tokens(Path(dict_file).parent / "conversion.json"))
        return dictionary
    dictionary = Dictionary()
    for symbol in tokenizer.vocabulary():
        dictionary.add_symbol(symbol)
    return dictionary


class Binarizer:
    """fairseq's mmap indexed dataset (what fairseq-preprocess writes), filled row by row."""

    def __init__(self, path: Path, vocab_size: int):
        from fairseq.data import indexed_dataset

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.builder = indexed_dataset.make_builder(str(path) + ".bin", impl="mmap",
                                                    vocab_size=vocab_size)

    def add(self, row: List[int]) -> None:
        import torch

        self.builder.add_item(torch.IntTensor(row))

    def finish(self) -> None:
        self.builder.finalize(str(self.path) + ".idx")


def encode_split(task: glue.GlueTask, examples, tokenizer: Tokenizer, dictionary,
                 max_text_tokens: Optional[int], dest: Path, split: str, chunk: int = 1000):
    """Tokenizes in chunks (fast tokenizers batch in parallel) and streams rows to disk."""
    outputs = [Binarizer(dest / f"input{k}" / split, len(dictionary))
               for k in range(len(task.text_columns))]
    counts = Counter()
    for start in range(0, len(examples), chunk):
        batch = examples[start:start + chunk]
        segments = [tokenizer.symbols([e.texts[k] for e in batch])
                    for k in range(len(task.text_columns))]
        for pieces in zip(*segments):
            if max_text_tokens is not None:
                first, second = glue.truncate_pair(pieces[0], pieces[1] if task.pair else None,
                                                   max_text_tokens)
                counts["truncated"] += sum(map(len, pieces)) > max_text_tokens
                pieces = [first] + ([second] if task.pair else [])
            for output, symbols in zip(outputs, pieces):
                ids = [dictionary.index(s) for s in symbols]
                counts["tokens"] += len(ids)
                counts["unk"] += sum(1 for i, s in zip(ids, symbols)
                                     if i == dictionary.unk() and s != "<unk>")
                output.add(ids + [dictionary.eos()])
    for output in outputs:
        output.finish()
    return counts


def prepare_glue(task_name: str, input_dir, dest, *, hf_tokenizer: Optional[str] = None,
                 sentencepiece: Optional[str] = None, gpt2_bpe: Optional[Sequence[str]] = None,
                 dict_file: Optional[str] = None, layout: str = "roberta",
                 max_len: Optional[int] = None, splits: Optional[str] = None,
                 input_format: str = "auto", force: bool = False) -> dict:
    """Writes DEST; returns what glue.json records. ``splits``: comma-separated fairseq split
    names (default: train, valid and whichever other splits have files)."""
    dest = Path(dest)
    check_dest(dest, force)  # before tokenizing a large corpus
    task = glue.get_task(task_name)
    tokenizer = build_tokenizer(hf_tokenizer, sentencepiece, gpt2_bpe)
    special_ids = LAYOUTS[layout]
    specials = 2 + (1 + (special_ids["separator_token"] is not None) if task.pair else 0)
    max_text_tokens = None
    if max_len is not None:
        max_text_tokens = max_len - specials
        if max_text_tokens < 1:
            raise AddropError(f"--max-len {max_len} leaves no room for text after the "
                              f"{specials} special tokens of a {layout} {task.display} input")
    chosen = splits.split(",") if splits else None
    if chosen is not None:
        unknown = [s for s in chosen if s not in task.splits]
        if unknown:
            raise AddropError(f"--splits: {task.display} has no split {unknown[0]!r} "
                              f"({', '.join(task.splits)})")
    available = {}
    for split in chosen or task.splits:
        optional = chosen is None and split not in ("train", "valid")
        if optional and not glue.split_file(task, input_dir, split, input_format).is_file():
            continue
        available[split] = glue.read_split(task, input_dir, split, input_format)

    dictionary = load_dictionary(dict_file, tokenizer)
    with staged_dest(dest, force) as staging:
        summary = write_splits(task, tokenizer, dictionary, dict_file, max_text_tokens,
                               available, staging)
        meta = {
            "task": task.name,
            "labels": list(task.labels),
            "num_classes": task.num_classes,
            "regression": task.regression,
            "metrics": list(task.metrics),
            "layout": layout,
            **special_ids,
            "max_len": max_len,
            "tokenizer": tokenizer.description,
            "symbols": symbol_form(tokenizer),
            "dict": str(dict_file) if dict_file else None,
            "splits": summary,
        }
        (staging / "glue.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def write_splits(task, tokenizer, dictionary, dict_file, max_text_tokens, available,
                 dest: Path) -> dict:
    """The binarized splits and dictionaries, written into ``dest`` (the staging directory)."""
    for k in range(len(task.text_columns)):
        (dest / f"input{k}").mkdir(parents=True, exist_ok=True)
        if dict_file:
            shutil.copyfile(dict_file, dest / f"input{k}" / "dict.txt")
        else:
            dictionary.save(str(dest / f"input{k}" / "dict.txt"))
    label_dir = dest / "label"
    label_dir.mkdir(parents=True, exist_ok=True)
    label_dictionary = None
    if not task.regression:
        from fairseq.data import Dictionary

        label_dictionary = Dictionary()
        for label in task.labels:
            label_dictionary.add_symbol(label)
        label_dictionary.save(str(label_dir / "dict.txt"))

    summary = {}
    for split, examples in available.items():
        counts = encode_split(task, examples, tokenizer, dictionary, max_text_tokens, dest, split)
        labels = [e.label for e in examples]
        if all(label is not None for label in labels):
            if task.regression:
                (label_dir / f"{split}.label").write_text(
                    "".join(f"{float(v)}\n" for v in labels), encoding="utf-8")
            else:
                output = Binarizer(label_dir / split, len(label_dictionary))
                for label in labels:
                    output.add([label_dictionary.index(label), label_dictionary.eos()])
                output.finish()
        summary[split] = {
            "examples": len(examples), "labelled": labels[0] is not None,
            "tokens": counts["tokens"], "unk": counts["unk"], "truncated": counts["truncated"]}

    return summary


def report(meta: dict, dest) -> List[str]:
    """What the command prints: a line a split, then the flags training needs."""
    lines = []
    for split, info in meta["splits"].items():
        unk = 100.0 * info["unk"] / max(1, info["tokens"])
        lines.append(f"{meta['task']} {split}: {info['examples']} examples"
                     f"{'' if info['labelled'] else ' (unlabelled)'}, {info['tokens']} tokens, "
                     f"{unk:.2f}% unknown, {info['truncated']} truncated")
    flags = f"--init-token {meta['init_token']}"
    if meta["separator_token"] is not None:
        flags += f" --separator-token {meta['separator_token']}"
    lines.append(f"wrote {dest}; train with --task addrop_sentence_prediction --glue-task "
                 f"{meta['task']} --num-classes {meta['num_classes']} {flags}"
                 f"{' --regression-target' if meta['regression'] else ''}")
    return lines

"""GLUE TSV files (or a Hugging Face ``glue`` JSON Lines dump) -> fairseq data for
``--task addrop_sentence_prediction``, tokenized the way the chosen pretrained model was.

Input: a GLUE task directory as distributed (train.tsv, dev.tsv, test.tsv; MNLI dev_matched.tsv,
dev_mismatched.tsv, ...) or the JSON Lines files ``datasets`` writes with
``load_dataset("nyu-mll/glue", TASK)[SPLIT].to_json(f"{SPLIT}.jsonl")`` (train.jsonl,
validation.jsonl, test.jsonl; MNLI validation_matched.jsonl, ...).

Tokenizer, one of:
  --hf-tokenizer DIR          a Hugging Face tokenizer directory (AutoTokenizer, local files only)
  --sentencepiece MODEL       a sentencepiece model
  --gpt2-bpe ENCODER VOCAB    fairseq RoBERTa's GPT-2 BPE (encoder.json, vocab.bpe)
and --dict DICT, the pretrained model's fairseq dict.txt (without it, a dictionary is made from
the tokenizer's whole vocabulary, for models trained from scratch). For a model converted by
addrop-convert-hf-encoder: --hf-tokenizer OUT/tokenizer --dict OUT/dict.txt (the tokens it
renamed, listed in OUT/conversion.json, are followed).

Output (fairseq's sentence_prediction layout): DEST/input0 (and DEST/input1 for pairs) with
train/valid[/valid1]/test[/test1] .bin/.idx and dict.txt; DEST/label with the binarized class
labels and dict.txt (the task's labels in Hugging Face ClassLabel order) or, for STS-B, one score
per line in SPLIT.label; DEST/glue.json records the task, labels and the flags training needs.
DEST is written whole or not at all: an existing non-empty DEST is refused unless --force, which
replaces it whole.
"""
import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from addrop_fairseq.data import glue
from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.output_dir import check_dest, staged_dest
from addrop_fairseq.cli.policy import run

# <s> A </s> </s> B </s> (RoBERTa) or [CLS] A [SEP] B [SEP] (BERT, ELECTRA): fairseq's
# sentence_prediction adds --init-token before input0 and --separator-token before input1, and
# every binarized segment ends with </s>
LAYOUTS = {"roberta": {"init_token": 0, "separator_token": 2},
           "bert": {"init_token": 0, "separator_token": None}}


class HFTokenizer:
    """Symbols are the tokenizer's ids as decimal strings (the convention of fairseq's own GPT-2
    BPE dictionaries), or its token strings when the given dictionary is written that way."""

    def __init__(self, directory: str):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise AddropError("--hf-tokenizer needs the transformers package") from None
        if not Path(directory).is_dir():
            raise AddropError(f"--hf-tokenizer {directory}: not a directory")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except Exception as e:  # transformers raises many types; say which directory failed
            raise AddropError(
                f"--hf-tokenizer {directory}: cannot load a tokenizer ({e})") from None
        self.description = f"hf:{directory}"
        self.form = "ids"
        self.renamed: Dict[str, str] = {}
        tok = self.tokenizer
        # special tokens the text itself may contain map onto fairseq's own special symbols
        self.special: Dict[int, str] = {}
        for attr, symbol in (("pad_token_id", "<pad>"), ("unk_token_id", "<unk>"),
                             ("cls_token_id", "<s>"), ("bos_token_id", "<s>"),
                             ("sep_token_id", "</s>"), ("eos_token_id", "</s>"),
                             ("mask_token_id", "<mask>")):
            token_id = getattr(tok, attr, None)
            if token_id is not None:
                self.special.setdefault(token_id, symbol)
        for token_id in tok.all_special_ids:
            self.special.setdefault(token_id, "<unk>")

    def choose_form(self, dictionary_symbols: set, renamed: Dict[str, str]) -> None:
        self.renamed = renamed
        vocab = self.tokenizer.get_vocab()
        by_token = sum(1 for t in vocab if renamed.get(t, t) in dictionary_symbols)
        by_id = sum(1 for i in vocab.values() if str(i) in dictionary_symbols)
        self.form = "tokens" if by_token > by_id else "ids"
        if max(by_token, by_id) < 0.5 * (len(vocab) - len(self.special)):
            raise AddropError(
                f"--dict holds only {max(by_token, by_id)} of the tokenizer's {len(vocab)} "
                "tokens (as token strings or as ids): it is not this tokenizer's dictionary")

    def _table(self) -> Dict[int, str]:
        """id -> fairseq symbol for the whole vocabulary, built once per symbol form."""
        if getattr(self, "_built", None) != self.form:
            table = {}
            for token, token_id in self.tokenizer.get_vocab().items():
                if token_id in self.special:
                    table[token_id] = self.special[token_id]
                elif self.form == "ids":
                    table[token_id] = str(token_id)
                else:
                    table[token_id] = self.renamed.get(token, token)
            self._symbols, self._built = table, self.form
        return self._symbols

    def symbols(self, texts: List[str]) -> List[List[str]]:
        table = self._table()
        batch = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [[table[i] for i in ids] for ids in batch]

    def vocabulary(self) -> List[str]:
        table = self._table()
        return [table[i] for i in sorted(set(table) - set(self.special))]


class SentencePieceTokenizer:
    def __init__(self, model: str):
        import sentencepiece as spm

        if not Path(model).is_file():
            raise AddropError(f"--sentencepiece {model}: no such file")
        self.sp = spm.SentencePieceProcessor(model_file=model)
        self.description = f"sentencepiece:{model}"
        self.form = "pieces"

    def choose_form(self, dictionary_symbols: set, renamed: Dict[str, str]) -> None:
        pass

    def symbols(self, texts: List[str]) -> List[List[str]]:
        return self.sp.encode(texts, out_type=str)

    def vocabulary(self) -> List[str]:
        sp = self.sp
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                if not (sp.is_control(i) or sp.is_unknown(i))]


class GPT2Tokenizer:
    def __init__(self, encoder_json: str, vocab_bpe: str):
        from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

        for path in (encoder_json, vocab_bpe):
            if not Path(path).is_file():
                raise AddropError(f"--gpt2-bpe: no such file {path}")
        self.bpe = get_encoder(encoder_json, vocab_bpe)
        self.description = f"gpt2:{encoder_json}"
        self.form = "ids"

    def choose_form(self, dictionary_symbols: set, renamed: Dict[str, str]) -> None:
        pass

    def symbols(self, texts: List[str]) -> List[List[str]]:
        return [[str(i) for i in self.bpe.encode(text)] for text in texts]

    def vocabulary(self) -> List[str]:
        return [str(i) for i in sorted(self.bpe.encoder.values())]


def build_tokenizer(args):
    chosen = [bool(args.hf_tokenizer), bool(args.sentencepiece), bool(args.gpt2_bpe)]
    if sum(chosen) != 1:
        raise AddropError("give exactly one of --hf-tokenizer, --sentencepiece, --gpt2-bpe")
    if args.hf_tokenizer:
        return HFTokenizer(args.hf_tokenizer)
    if args.sentencepiece:
        return SentencePieceTokenizer(args.sentencepiece)
    return GPT2Tokenizer(*args.gpt2_bpe)


def renamed_tokens(conversion: Path) -> Dict[str, str]:
    """addrop-convert-hf-encoder gives tokens that a fairseq dictionary cannot hold (empty,
    with whitespace, spelling a reserved symbol) placeholder names, recorded beside dict.txt."""
    if not conversion.is_file():
        return {}
    try:
        return dict(json.loads(conversion.read_text(encoding="utf-8")).get("renamed_tokens", {}))
    except (ValueError, AttributeError) as e:
        raise AddropError(f"{conversion}: not a conversion record ({e})") from None


def load_dictionary(args, tokenizer):
    from fairseq.data import Dictionary

    if args.dict:
        if not Path(args.dict).is_file():
            raise AddropError(f"--dict {args.dict}: no such file")
        try:
            dictionary = Dictionary.load(args.dict)
        except Exception as e:
            raise AddropError(f"--dict {args.dict}: not a fairseq dictionary ({e})") from None
        tokenizer.choose_form(set(dictionary.symbols[dictionary.nspecial:]),
                              renamed_tokens(Path(args.dict).parent / "conversion.json"))
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


def encode_split(task: glue.GlueTask, examples, tokenizer, dictionary,
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


def prepare(args) -> dict:
    check_dest(Path(args.dest), args.force)  # before tokenizing a large corpus
    task = glue.get_task(args.task)
    tokenizer = build_tokenizer(args)
    layout = LAYOUTS[args.layout]
    specials = 2 + (1 + (layout["separator_token"] is not None) if task.pair else 0)
    max_text_tokens = None
    if args.max_len is not None:
        max_text_tokens = args.max_len - specials
        if max_text_tokens < 1:
            raise AddropError(f"--max-len {args.max_len} leaves no room for text after the "
                              f"{specials} special tokens of a {args.layout} {task.display} input")
    splits = args.splits.split(",") if args.splits else None
    if splits is not None:
        unknown = [s for s in splits if s not in task.splits]
        if unknown:
            raise AddropError(f"--splits: {task.display} has no split {unknown[0]!r} "
                              f"({', '.join(task.splits)})")
    available = {}
    for split in splits or task.splits:
        optional = splits is None and split not in ("train", "valid")
        if optional and not glue.split_file(task, args.input, split, args.input_format).is_file():
            continue
        available[split] = glue.read_split(task, args.input, split, args.input_format)

    dictionary = load_dictionary(args, tokenizer)
    with staged_dest(Path(args.dest), args.force) as dest:
        summary = write_splits(args, task, tokenizer, dictionary, max_text_tokens, available, dest)
        meta = {
            "task": task.name,
            "labels": list(task.labels),
            "num_classes": task.num_classes,
            "regression": task.regression,
            "metrics": list(task.metrics),
            "layout": args.layout,
            **layout,
            "max_len": args.max_len,
            "tokenizer": tokenizer.description,
            "symbols": tokenizer.form,
            "dict": str(args.dict) if args.dict else None,
            "splits": summary,
        }
        (dest / "glue.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def write_splits(args, task, tokenizer, dictionary, max_text_tokens, available, dest: Path) -> dict:
    """The binarized splits and dictionaries, written into ``dest`` (the staging directory)."""
    for k in range(len(task.text_columns)):
        (dest / f"input{k}").mkdir(parents=True, exist_ok=True)
        if args.dict:
            shutil.copyfile(args.dict, dest / f"input{k}" / "dict.txt")
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True,
                        help=f"one of {', '.join(glue.TASK_NAMES)} "
                             "(GLUE spellings such as SST-2 work too)")
    parser.add_argument("--input", required=True, help="the task's GLUE directory or HF dump")
    parser.add_argument("--input-format", choices=("auto", "tsv", "jsonl"), default="auto")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--hf-tokenizer", metavar="DIR")
    parser.add_argument("--sentencepiece", metavar="MODEL")
    parser.add_argument("--gpt2-bpe", nargs=2, metavar=("ENCODER_JSON", "VOCAB_BPE"))
    parser.add_argument("--dict", help="the pretrained model's fairseq dict.txt")
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default="roberta",
                        help="roberta: <s> A </s></s> B </s> (--init-token 0 --separator-token 2); "
                             "bert: [CLS] A [SEP] B [SEP] (--init-token 0)")
    parser.add_argument("--max-len", type=int, help="truncate inputs, longest segment first, to "
                        "this many tokens including the special tokens (the paper's max_len)")
    parser.add_argument("--splits", help="comma-separated fairseq split names (default: train, "
                        "valid and whichever other splits have files)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing non-empty --dest whole")
    args = parser.parse_args(argv)
    try:
        meta = prepare(args)
    except AddropError as e:
        sys.exit(f"prepare_glue: error: {e}")
    for split, info in meta["splits"].items():
        unk = 100.0 * info["unk"] / max(1, info["tokens"])
        print(f"{meta['task']} {split}: {info['examples']} examples"
              f"{'' if info['labelled'] else ' (unlabelled)'}, {info['tokens']} tokens, "
              f"{unk:.2f}% unknown, {info['truncated']} truncated")
    flags = f"--init-token {meta['init_token']}"
    if meta["separator_token"] is not None:
        flags += f" --separator-token {meta['separator_token']}"
    print(f"wrote {args.dest}; train with --task addrop_sentence_prediction --glue-task "
          f"{meta['task']} --num-classes {meta['num_classes']} {flags}"
          f"{' --regression-target' if meta['regression'] else ''}")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

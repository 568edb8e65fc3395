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
import random
import subprocess
import sys
from pathlib import Path

from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.output_dir import check_dest, staged_dest
from addrop_fairseq.data.text import read_lines
from addrop_fairseq.cli.policy import run


def fail(message: str) -> None:
    sys.exit(f"prepare_translation: error: {message}")


def read_pair(prefix: str, src: str, tgt: str):
    paths = [Path(f"{prefix}.{src}"), Path(f"{prefix}.{tgt}")]
    for path in paths:
        if not path.is_file():
            fail(f"missing file {path}")
    sides = [read_lines(path) for path in paths]
    if len(sides[0]) != len(sides[1]):
        fail(f"{paths[0]} has {len(sides[0])} lines but {paths[1]} has {len(sides[1])}")
    if not sides[0]:
        fail(f"{paths[0]} is empty")
    for number, (a, b) in enumerate(zip(*sides), 1):
        if not a.strip() or not b.strip():
            fail(f"{paths[0] if not a.strip() else paths[1]}:{number}: empty line in a sentence pair")
    return list(zip(*sides))


def write_split(pairs, dest: Path, split: str, src: str, tgt: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for index, lang in enumerate((src, tgt)):
        with open(dest / f"{split}.{lang}", "w", encoding="utf-8") as f:
            f.writelines(pair[index] + "\n" for pair in pairs)


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
    args = parser.parse_args(argv)
    try:
        prepare(args)
    except AddropError as error:
        fail(str(error))


def prepare(args) -> None:
    src, tgt = args.source_lang, args.target_lang
    if args.target_spm_model and not args.spm_model:
        fail("--target-spm-model needs --spm-model for the source side")
    for given in (args.spm_model, args.target_spm_model, args.srcdict):
        if given and not Path(given).is_file():
            fail(f"missing file {given}")
    check_dest(args.dest, args.force)  # before reading a large corpus

    if args.corpus:
        if args.train or args.valid or args.test:
            fail("give either --corpus or --train/--valid/--test, not both")
        pairs = read_pair(args.corpus, src, tgt)
        held_out = args.valid_size + args.test_size
        if held_out >= len(pairs):
            fail(f"--valid-size {args.valid_size} + --test-size {args.test_size} leaves no "
                 f"training data from {len(pairs)} pairs")
        random.Random(args.split_seed).shuffle(pairs)
        splits = {"valid": pairs[:args.valid_size],
                  "test": pairs[args.valid_size:held_out], "train": pairs[held_out:]}
    else:
        if not (args.train and args.valid):
            fail("give --corpus, or at least --train and --valid")
        splits = {name: read_pair(prefix, src, tgt) for name, prefix in
                  (("train", args.train), ("valid", args.valid), ("test", args.test)) if prefix}

    with staged_dest(args.dest, args.force) as staging:
        write_data(args, splits, staging)
    print(f"fairseq data in {args.dest / 'bin'}")


def write_data(args, splits, dest: Path) -> None:
    """Everything under DEST, written into ``dest`` (the staging directory)."""
    src, tgt = args.source_lang, args.target_lang
    raw = dest / "raw"
    for name, pairs in splits.items():
        write_split(pairs, raw, name, src, tgt)
        print(f"{name}: {len(pairs)} pairs")

    import sentencepiece as spm

    model_path = dest / "spm.model"
    if args.spm_model:
        model_path.write_bytes(Path(args.spm_model).read_bytes())
    else:
        try:
            spm.SentencePieceTrainer.train(
                input=[str(raw / f"train.{src}"), str(raw / f"train.{tgt}")],
                model_prefix=str(dest / "spm"), vocab_size=args.vocab_size,
                character_coverage=1.0, model_type="unigram", hard_vocab_limit=False,
                byte_fallback=True,  # a character unseen in training becomes bytes, not <unk>
                num_threads=args.workers, minloglevel=2,
            )
        except RuntimeError as error:  # e.g. a vocabulary smaller than the 256 byte pieces
            raise AddropError(f"--vocab-size {args.vocab_size}: sentencepiece training failed: "
                              f"{str(error).strip().splitlines()[-1]}") from None
    processors = {src: load_spm(spm, model_path, args.spm_model)}
    processors[tgt] = processors[src]
    if args.target_spm_model:
        target_path = dest / "spm.target.model"
        target_path.write_bytes(Path(args.target_spm_model).read_bytes())
        processors[tgt] = load_spm(spm, target_path, args.target_spm_model)
    encoded = dest / "spm"
    encoded.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        for index, lang in enumerate((src, tgt)):
            pieces = processors[lang].encode([pair[index] for pair in pairs], out_type=str)
            with open(encoded / f"{name}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(" ".join(p) + "\n" for p in pieces)

    command = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src,
               "--target-lang", tgt, "--trainpref", str(encoded / "train"),
               "--validpref", str(encoded / "valid"), "--destdir", str(dest / "bin"),
               "--joined-dictionary", "--workers", str(args.workers)]
    if "test" in splits:
        command += ["--testpref", str(encoded / "test")]
    srcdict = args.srcdict
    if not srcdict:
        # every piece of the vocabulary, not only those the training text happens to use: a
        # piece seen first at test time would otherwise become <unk>
        srcdict = str(dest / "dict.txt")
        vocabulary = {processor.id_to_piece(i) for processor in processors.values()
                      for i in range(processor.get_piece_size())
                      if not (processor.is_control(i) or processor.is_unknown(i))}
        with open(srcdict, "w", encoding="utf-8") as f:
            f.writelines(f"{piece} 1\n" for piece in sorted(vocabulary))
    command += ["--srcdict", srcdict]
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise AddropError(f"fairseq-preprocess failed: {lines[-1] if lines else result.returncode}")


def load_spm(spm, path: Path, given) -> "spm.SentencePieceProcessor":
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as error:
        raise AddropError(f"{given or path}: not a sentencepiece model "
                          f"({str(error).strip().splitlines()[-1]})") from None


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

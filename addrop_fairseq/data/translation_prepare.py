"""Parallel text -> sentencepiece -> fairseq binary data, ready for ``--task addrop_translation``
(addrop-prepare-translation).

Writes DEST/raw (plain text splits), DEST/spm.model, DEST/spm (encoded text) and DEST/bin
(fairseq-preprocess output, joined dictionary). DEST is written whole or not at all
(``output_dir``).
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import AddropError
from .output_dir import check_dest, staged_dest
from .text import read_lines
from .tokenizers import SentencePieceTokenizer, train_sentencepiece

Pairs = List[Tuple[str, str]]


def read_pair(prefix, src: str, tgt: str) -> Pairs:
    """The sentence pairs of PREFIX.SRC and PREFIX.TGT: same line count, no empty line."""
    paths = [Path(f"{prefix}.{src}"), Path(f"{prefix}.{tgt}")]
    for path in paths:
        if not path.is_file():
            raise AddropError(f"missing file {path}")
    sides = [read_lines(path) for path in paths]
    if len(sides[0]) != len(sides[1]):
        raise AddropError(f"{paths[0]} has {len(sides[0])} lines but {paths[1]} has {len(sides[1])}")
    if not sides[0]:
        raise AddropError(f"{paths[0]} is empty")
    for number, (a, b) in enumerate(zip(*sides), 1):
        if not a.strip() or not b.strip():
            raise AddropError(f"{paths[0] if not a.strip() else paths[1]}:{number}: empty line "
                              "in a sentence pair")
    return list(zip(*sides))


def split_corpus(pairs: Pairs, valid_size: int, test_size: int, seed: int) -> Dict[str, Pairs]:
    """A deterministic shuffle, then valid, test and the rest for training."""
    held_out = valid_size + test_size
    if held_out >= len(pairs):
        raise AddropError(f"--valid-size {valid_size} + --test-size {test_size} leaves no "
                          f"training data from {len(pairs)} pairs")
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    return {"valid": pairs[:valid_size], "test": pairs[valid_size:held_out],
            "train": pairs[held_out:]}


def write_split(pairs: Pairs, dest: Path, split: str, src: str, tgt: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for index, lang in enumerate((src, tgt)):
        with open(dest / f"{split}.{lang}", "w", encoding="utf-8") as f:
            f.writelines(pair[index] + "\n" for pair in pairs)


def prepare_translation(source_lang: str, target_lang: str, dest, *, corpus=None, train=None,
                        valid=None, test=None, valid_size: int = 300, test_size: int = 300,
                        split_seed: int = 1, vocab_size: int = 8000, spm_model=None,
                        target_spm_model=None, srcdict=None, workers: int = 1,
                        force: bool = False) -> None:
    """Either the splits (``train``, ``valid`` [, ``test``]: file prefixes) or one ``corpus`` to
    split. With ``spm_model`` (and ``target_spm_model`` for a separate target side) the text is
    encoded with those models instead of a joint one trained here; ``srcdict`` replaces the
    dictionary of every piece of the models."""
    dest = Path(dest)
    src, tgt = source_lang, target_lang
    if target_spm_model and not spm_model:
        raise AddropError("--target-spm-model needs --spm-model for the source side")
    for given in (spm_model, target_spm_model, srcdict):
        if given and not Path(given).is_file():
            raise AddropError(f"missing file {given}")
    check_dest(dest, force)  # before reading a large corpus

    if corpus:
        if train or valid or test:
            raise AddropError("give either --corpus or --train/--valid/--test, not both")
        splits = split_corpus(read_pair(corpus, src, tgt), valid_size, test_size, split_seed)
    else:
        if not (train and valid):
            raise AddropError("give --corpus, or at least --train and --valid")
        splits = {name: read_pair(prefix, src, tgt) for name, prefix in
                  (("train", train), ("valid", valid), ("test", test)) if prefix}

    with staged_dest(dest, force) as staging:
        write_data(splits, staging, src, tgt, vocab_size=vocab_size, spm_model=spm_model,
                   target_spm_model=target_spm_model, srcdict=srcdict, workers=workers)
    print(f"fairseq data in {dest / 'bin'}")


def write_data(splits: Dict[str, Pairs], dest: Path, src: str, tgt: str, *, vocab_size: int,
               spm_model: Optional[str], target_spm_model: Optional[str],
               srcdict: Optional[str], workers: int) -> None:
    """Everything under DEST, written into ``dest`` (the staging directory)."""
    raw = dest / "raw"
    for name, pairs in splits.items():
        write_split(pairs, raw, name, src, tgt)
        print(f"{name}: {len(pairs)} pairs")

    model_path = dest / "spm.model"
    if spm_model:
        model_path.write_bytes(Path(spm_model).read_bytes())
        source_tokenizer = SentencePieceTokenizer(spm_model, option="--spm-model")
    else:
        train_sentencepiece([raw / f"train.{src}", raw / f"train.{tgt}"], dest / "spm",
                            vocab_size, workers)
        source_tokenizer = SentencePieceTokenizer(model_path)
    tokenizers = {src: source_tokenizer, tgt: source_tokenizer}
    if target_spm_model:
        (dest / "spm.target.model").write_bytes(Path(target_spm_model).read_bytes())
        tokenizers[tgt] = SentencePieceTokenizer(target_spm_model, option="--target-spm-model")
    encoded = dest / "spm"
    encoded.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        for index, lang in enumerate((src, tgt)):
            pieces = tokenizers[lang].symbols([pair[index] for pair in pairs])
            with open(encoded / f"{name}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(" ".join(p) + "\n" for p in pieces)

    command = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", src,
               "--target-lang", tgt, "--trainpref", str(encoded / "train"),
               "--validpref", str(encoded / "valid"), "--destdir", str(dest / "bin"),
               "--joined-dictionary", "--workers", str(workers)]
    if "test" in splits:
        command += ["--testpref", str(encoded / "test")]
    if not srcdict:
        # every piece of the vocabulary, not only those the training text happens to use: a
        # piece seen first at test time would otherwise become <unk>
        srcdict = str(dest / "dict.txt")
        vocabulary = {piece for tokenizer in tokenizers.values() for piece in tokenizer.vocabulary()}
        with open(srcdict, "w", encoding="utf-8") as f:
            f.writelines(f"{piece} 1\n" for piece in sorted(vocabulary))
    command += ["--srcdict", srcdict]
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise AddropError(f"fairseq-preprocess failed: {lines[-1] if lines else result.returncode}")

"""addrop-prepare-translation: splits, sentencepiece and fairseq binaries, and its errors."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest
import sentencepiece as spm
from fairseq.data import Dictionary, data_utils

from conftest import REPO, run_cli
from pathlib import Path

from addrop_fairseq.data.samples import QUICKSTART_CORPUS


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def prepare(*args, check=True):
    return run_cli("addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--workers", "1",
                   *args, cwd=REPO, check=check)


def quickstart_corpus(directory, lines=200):
    directory.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "ro"):
        text = (Path(QUICKSTART_CORPUS + f".{lang}")).read_text(encoding="utf-8").split("\n")
        write(directory / f"c.{lang}", text[:lines])
    return directory / "c"


def snapshot(directory):
    """Every file under ``directory`` and a hash of its bytes."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def leftovers(dest):
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}."))


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """The corpus, and an earlier run's --dest (its layout, with train/valid/test; the content
    only needs to be recognisable, which saves a sentencepiece and fairseq-preprocess run)."""
    root = tmp_path_factory.mktemp("previous")
    corpus = quickstart_corpus(root / "corpus")
    for name in ("raw/train.en", "raw/test.ro", "spm.model", "dict.txt", "bin/dict.en.txt",
                 "bin/test.en-ro.ro.bin", "bin/test.en-ro.ro.idx"):
        (root / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "out" / name).write_text(f"earlier run: {name}\n")
    return corpus, root / "out"


def test_bom_is_dropped_and_only_newlines_end_lines():
    from addrop_fairseq.data.text import read_lines

    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".en") as f:
        # BOM, U+2028 and U+0085 inside lines, a bare CR, a CRLF ending, no final newline
        f.write("\ufefffirst line\nsecond\u2028half\nthird\x85part\rmore\r\nlast".encode())
        f.flush()
        assert read_lines(f.name) == ["first line", "second\u2028half", "third\x85part\rmore",
                                      "last"]
        assert len(read_lines(f.name)) == 4 == open(f.name, "rb").read().count(b"\n") + 1


def test_download_wmt16_names_the_pairs_it_has(tmp_path):
    from addrop_fairseq.data.wmt16 import download_wmt16
    from addrop_fairseq.errors import AddropError

    with pytest.raises(AddropError, match=r"^pair 'en-de' is not in WMT16 here; allowed: "
                                          r"\['en-ro', 'en-tr', 'ro-en', 'tr-en'\]$"):
        download_wmt16("en", "de", tmp_path / "out")
    assert not (tmp_path / "out").exists()

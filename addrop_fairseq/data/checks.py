"""Binarized splits checked whole before training starts.

fairseq reads an indexed dataset lazily: a ``.bin`` cut short fails only when a batch reaches its
missing end (hours into a real run, ``buffer is smaller than requested size``), and a cut ``.idx``
fails with numpy's or an assertion's words, naming no file. Reading the index (a few bytes per
sentence, not the data) is enough to see both: the index must have exactly the length its
header announces, and its entries must tile the ``.bin`` exactly.
"""
from __future__ import annotations

import os
import re
import struct
from typing import Iterable, Optional

import numpy as np

from ..errors import AddropError

MMAP_MAGIC = b"MMIDIDX\x00\x00"  # fairseq's MMapIndexedDataset (fairseq-preprocess's default)
LEGACY_MAGIC = b"TNTIDX\x00\x00"  # IndexedDataset (--dataset-impl lazy/cached)


def _item_size(code: int) -> Optional[int]:
    from fairseq.data.indexed_dataset import _code_to_dtype  # the codes fairseq writes

    return np.dtype(_code_to_dtype[code]).itemsize if code in _code_to_dtype else None


def _problem_mmap(index: bytes, bin_size: int) -> Optional[str]:
    header = len(MMAP_MAGIC) + 8 + 1 + 8
    if len(index) < header:
        return f"the index is {len(index)} bytes, shorter than its {header}-byte header"
    (version,) = struct.unpack_from("<Q", index, len(MMAP_MAGIC))
    code = index[len(MMAP_MAGIC) + 8]
    (count,) = struct.unpack_from("<Q", index, len(MMAP_MAGIC) + 9)
    if version != 1 or _item_size(code) is None:
        return f"unknown index version {version} or element type {code}"
    expected = header + 12 * count
    if len(index) != expected:
        return (f"the index announces {count} sentences ({expected} bytes) but has "
                f"{len(index)} bytes")
    sizes = np.frombuffer(index, dtype=np.int32, count=count, offset=header).astype(np.int64)
    pointers = np.frombuffer(index, dtype=np.int64, count=count, offset=header + 4 * count)
    return _problem_entries(sizes, pointers, _item_size(code), bin_size)


def _problem_legacy(index: bytes, bin_size: int) -> Optional[str]:
    header = len(LEGACY_MAGIC) + 8 + 16 + 16
    if len(index) < header:
        return f"the index is {len(index)} bytes, shorter than its {header}-byte header"
    _, item_size, count, dims = struct.unpack_from("<QQQQ", index, len(LEGACY_MAGIC) + 8)
    expected = header + 8 * 2 * (count + 1) + 8 * dims
    if len(index) != expected:
        return (f"the index announces {count} sentences ({expected} bytes) but has "
                f"{len(index)} bytes")
    offsets = np.frombuffer(index, dtype=np.int64, count=count + 1, offset=header + 8 * (count + 1))
    sizes = np.diff(offsets)
    return _problem_entries(sizes, offsets[:-1] * item_size, item_size, bin_size)


def _problem_entries(sizes: np.ndarray, pointers: np.ndarray, item_size: int,
                     bin_size: int) -> Optional[str]:
    if (sizes < 0).any():
        bad = int(np.nonzero(sizes < 0)[0][0])
        return f"entry {bad} has a negative length"
    ends = pointers + sizes * item_size
    starts = np.concatenate([[0], ends[:-1]])
    if not np.array_equal(pointers, starts):
        bad = int(np.nonzero(pointers != starts)[0][0])
        return f"entry {bad} starts at byte {int(pointers[bad])}, expected {int(starts[bad])}"
    needed = int(ends[-1]) if len(ends) else 0
    if needed != bin_size:
        shortfall = "ends before" if bin_size < needed else "is longer than"
        return (f"the index covers {needed} bytes of data, but the .bin has {bin_size} bytes "
                f"(it {shortfall} what the index lists)")
    return None


def problem(prefix: str) -> Optional[str]:
    """What is wrong with the binarized split at ``prefix`` (``prefix``.idx/.bin), or None."""
    idx, bin_ = f"{prefix}.idx", f"{prefix}.bin"
    with open(idx, "rb") as f:
        index = f.read()
    bin_size = os.path.getsize(bin_)
    if index.startswith(MMAP_MAGIC):
        return _problem_mmap(index, bin_size)
    if index.startswith(LEGACY_MAGIC):
        return _problem_legacy(index, bin_size)
    if len(index) < len(MMAP_MAGIC):
        return f"the index is {len(index)} bytes, shorter than any fairseq index header"
    return None  # another format (e.g. huffman): fairseq's own reader decides


_checked = {}


def check_split_files(data_dir: str, split: str, rerun: str) -> None:
    """Checks every ``.idx``/``.bin`` pair of ``split`` under ``data_dir`` (one level down too:
    input0/, label/, ...); raises a one-line AddropError naming the file and what to rerun."""
    for prefix in _split_prefixes(data_dir, split):
        key = tuple((os.path.getmtime(p), os.path.getsize(p)) for p in (prefix + ".idx", prefix + ".bin"))
        if _checked.get(prefix) == key:
            continue
        found = problem(prefix)
        if found is not None:
            raise AddropError(f"{prefix}.idx and .bin: truncated or corrupt binarized data: {found}; "
                              f"rerun {rerun} to rewrite {data_dir}")
        _checked[prefix] = key


def _split_prefixes(data_dir: str, split: str) -> Iterable[str]:
    # train, train1, ... are the shards fairseq combines; SPLIT.SRC-TGT.LANG for translation
    pattern = re.compile(rf"^{re.escape(split)}\d*(\..+)?\.idx$")
    directories = [data_dir]
    try:
        directories += [os.path.join(data_dir, d) for d in sorted(os.listdir(data_dir))
                        if os.path.isdir(os.path.join(data_dir, d))]
    except OSError:
        return []
    prefixes = []
    for directory in directories:
        for name in sorted(os.listdir(directory)):
            if pattern.match(name) and os.path.isfile(os.path.join(directory, name[:-4] + ".bin")):
                prefixes.append(os.path.join(directory, name[:-4]))
    return prefixes

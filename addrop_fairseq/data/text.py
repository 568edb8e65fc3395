"""Reading the prepare scripts' text input: UTF-8, lines as ``wc -l`` counts them.

``str.splitlines`` also breaks at U+2028, U+0085, form feeds and bare carriage returns, so a
sentence holding one of them became two lines and its pair fell out of alignment; Python's own
text files break at bare carriage returns. Here only ``\\n`` ends a line (a ``\\r`` before it is
dropped, for files written on Windows), a UTF-8 byte-order mark at the start of the file is
dropped rather than glued to the first word, and bytes that are not UTF-8 are named by file,
line and column.
"""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterator, List, Tuple

from ..errors import AddropError


def decode_line(raw: bytes, path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = len(raw[:error.start].decode("utf-8")) + 1
        raise AddropError(f"{path}:{number}: not UTF-8 (byte 0x{raw[error.start]:02x} at column "
                          f"{column})") from None


def numbered_lines(path) -> Iterator[Tuple[int, str]]:
    """(line number, text without its line ending) for every line of ``path``."""
    path = Path(path)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):  # binary files split on b"\n" only
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            yield number, decode_line(raw, path, number)


def read_lines(path) -> List[str]:
    return [line for _, line in numbered_lines(path)]

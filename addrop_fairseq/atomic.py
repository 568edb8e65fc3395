"""Files replaced whole: a reader (or a run killed midway) sees the old file or the new one.

The new content is written to a temporary sibling (the same directory, so the final move is a
rename(2), atomic on POSIX) and moved over the file only once it is complete. Several files made
together (a table and the plot drawn from the same numbers) are moved only once all are written,
so an error while making the second leaves both old ones in place.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


def _staging(path: Path) -> Path:
    # keeps the suffix: matplotlib picks the format of savefig from it
    return path.with_name(f"{path.stem}.tmp{path.suffix}")


@contextlib.contextmanager
def replacing(*paths: Path) -> Iterator[tuple[Path, ...]]:
    """Yields a temporary path for each of ``paths``; when the block ends without an error each
    is moved over its path, in the order given. On an error no path is touched and the
    temporary files are removed."""
    paths = tuple(Path(p) for p in paths)
    staged = tuple(_staging(p) for p in paths)
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield staged
        for tmp, path in zip(staged, paths):
            os.replace(tmp, path)
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Replaces ``path`` whole with ``text`` (UTF-8)."""
    with replacing(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")

"""A prepare script's --dest appears whole or not at all.

The script writes into a fresh directory beside --dest (same file system, so the final move is a
rename) and moves it into place only after every step succeeded. An existing non-empty --dest is
refused unless --force: rewriting files in place left old and new files side by side (a stale
test split beside new dictionaries, sentencepiece models that no longer match bin/). With
--force the old directory is swapped out in one atomic exchange (Linux renameat2) where the
system offers it, so an interrupted run leaves either the old or the new directory at --dest.
A run killed outright leaves its unfinished ``.DEST.partial-*`` directory beside --dest; it is
never read, and the next run of the script deletes it.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import AddropError

_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths atomically; False where the C library or file system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _remove_stale_partials(dest: Path) -> None:
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        pid = stale.name[len(f".{dest.name}.partial-"):].split("-")[0]
        if pid.isdigit() and _alive(int(pid)):
            continue  # another run writing the same --dest right now
        shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_dest(dest: Path, force: bool) -> None:
    """The one-line refusal, before any work is done."""
    if dest.exists() and not dest.is_dir():
        raise AddropError(f"--dest {dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise AddropError(f"--dest {dest} exists and is not empty; pass --force to replace it "
                          "whole, or choose another --dest")


@contextlib.contextmanager
def staged_dest(dest, force: bool) -> Iterator[Path]:
    """Yields the directory to write into; on success it becomes ``dest``, on any error or
    interruption it is deleted and ``dest`` is left as it was."""
    dest = Path(dest)
    check_dest(dest, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
    try:
        yield staging
        check_dest(dest, force)  # another process may have written it meanwhile
        if dest.is_dir() and any(dest.iterdir()):
            if _exchange(staging, dest):
                shutil.rmtree(staging)  # now the old directory
                return
            old = staging.with_name(staging.name + ".old")
            os.rename(dest, old)
            os.rename(staging, dest)
            shutil.rmtree(old)
        else:
            os.replace(staging, dest)  # rename(2) replaces an empty directory atomically
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

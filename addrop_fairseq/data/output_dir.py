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
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from ..errors import AddropError

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


def check_dest(dest: Path, force: bool, name: str = "--dest") -> None:
    """The one-line refusal, before any work is done; ``name``: the argument, for the message."""
    if dest.exists() and not dest.is_dir():
        raise AddropError(f"{name} {dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise AddropError(f"{name} {dest} exists and is not empty; pass --force to replace it "
                          f"whole, or choose another {name}")


@contextlib.contextmanager
def _interruption_seen() -> Iterator:
    """Yields a function telling whether a Ctrl-C (SIGINT) arrived meanwhile.

    The KeyboardInterrupt that Python raises for it can land anywhere, and some places swallow
    it: a library's bare ``except:`` around an optional import, a finaliser (where Python only
    prints it). The script then ran on to the end and exited 0, having committed its output
    after the user asked it to stop. The handler records the signal before raising, so the
    commit can refuse."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (
            signal.SIG_IGN, None):
        yield lambda: False  # signals are the main thread's; an ignored SIGINT stays ignored
        return
    seen = []

    def handler(signum, frame):
        seen.append(signum)
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def staged_dest(dest, force: bool, name: str = "--dest") -> Iterator[Path]:
    """Yields the directory to write into; on success it becomes ``dest``, on any error or
    interruption it is deleted and ``dest`` is left as it was."""
    dest = Path(dest)
    check_dest(dest, force, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
    with _interruption_seen() as interrupted:
        try:
            yield staging
            if interrupted():  # a KeyboardInterrupt swallowed on the way: still not committed
                raise KeyboardInterrupt
            check_dest(dest, force, name)  # another process may have written it meanwhile
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

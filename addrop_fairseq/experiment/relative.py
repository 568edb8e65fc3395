"""Paths and command lines as records write them: relative to the directory the command ran in.

A record (results.jsonl, an analysis's JSON, a benchmark report) is committed and read on other
machines, so it names no absolute path of the machine that wrote it. Every documented command runs
from the repository root, so there the paths come out relative to the repository. Only what is
recorded is rewritten: the processes themselves keep the paths they were given (a lexical
``..`` through a symbolic link would not lead back to the same place).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def relative_path(path, base=None, outside=None) -> str:
    """``path`` as a record writes it: an absolute path relative to ``base`` (default: the working
    directory), with ``..`` where it lies outside (or, given ``outside``, relative to that
    directory instead: a report names its own files from where it lies); a relative path as it
    was given."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    base = os.fspath(base) if base is not None else os.getcwd()
    if outside is not None and not _inside(text, base):
        base = os.fspath(outside)
    return os.path.relpath(text, base)


def _inside(path: str, base: str) -> bool:
    return os.path.relpath(path, base).split(os.sep)[0] != os.pardir


def relative_command(argv, base=None, outside=None) -> str:
    """The command line ``argv`` (joined with shlex) with every absolute path in it, standing alone
    or as the value of ``--option=PATH`` / ``key=PATH``, relative to ``base`` (default: the
    working directory). This interpreter, when it lies outside ``base``, is written by its file
    name (``python3``): the environment it belongs to is not part of the experiment."""
    base = os.fspath(base) if base is not None else os.getcwd()
    words = []
    for word in map(os.fspath, argv):
        if word == sys.executable and not _inside(word, base):
            words.append(Path(word).name)
        elif os.path.isabs(word):
            words.append(relative_path(word, base, outside))
        elif "=" in word and os.path.isabs(word.partition("=")[2]):
            key, _, value = word.partition("=")
            words.append(f"{key}={relative_path(value, base, outside)}")
        else:
            words.append(word)
    return shlex.join(words)

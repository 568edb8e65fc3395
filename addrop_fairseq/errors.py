"""A user error in AD-DROP options or data prints one line, not a fairseq traceback."""
from __future__ import annotations

import sys


class AddropError(ValueError):
    """Bad option or input; the message names the bad value and what is allowed."""


_previous_hook = sys.excepthook


def _one_line(exc_type, exc, tb):
    if issubclass(exc_type, AddropError):
        print(f"addrop_fairseq: error: {exc}", file=sys.stderr)
        return
    _previous_hook(exc_type, exc, tb)


def install_excepthook() -> None:
    if sys.excepthook is not _one_line:
        sys.excepthook = _one_line

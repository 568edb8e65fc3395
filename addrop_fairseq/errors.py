"""A user error in AD-DROP options or data prints one line, not a fairseq traceback."""
from __future__ import annotations

import argparse
import sys


class AddropError(ValueError):
    """Bad option or input; the message names the bad value and what is allowed."""


_previous_hook = sys.excepthook
_argparse_error = argparse.ArgumentParser.error


def _one_line(exc_type, exc, tb):
    if issubclass(exc_type, AddropError):
        print(f"addrop_fairseq: error: {exc}", file=sys.stderr)
        return
    _previous_hook(exc_type, exc, tb)


def _addrop_names(kind: str) -> str:
    """The registered AD-DROP tasks or criteria, for the message."""
    if kind == "task":
        from fairseq.tasks import TASK_REGISTRY as registry
    else:
        from fairseq.criterions import CRITERION_REGISTRY as registry
    return "|".join(sorted(name for name in registry if name.startswith("addrop_")))


def misplaced_addrop_options(message: str):
    """The one-line error for ``--addrop-*`` options that the chosen task/criterion lacks.

    fairseq adds a component's options only when that component is chosen, so ``--addrop-p``
    with a plain criterion is an "unrecognized argument"; argparse's answer is a page of usage
    that never says which component the option belongs to. Returns None for other messages.
    """
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return None
    words = message[len(prefix):].split()
    options = [w.split("=")[0] for w in words if w.startswith("--addrop-")]
    if not options:
        return None
    from .config import AddropScheduleConfig

    task_options = {"--" + name.replace("_", "-") for name in AddropScheduleConfig.__dataclass_fields__}
    parts = []
    for option in dict.fromkeys(options):
        if option in task_options:
            parts.append(f"{option} is an option of the AD-DROP tasks "
                         f"(--task {_addrop_names('task')})")
        else:
            parts.append(f"{option} is an option of the AD-DROP criteria "
                         f"(--criterion {_addrop_names('criterion')})")
    return (f"unrecognized {' '.join(words)}: " + "; ".join(parts)
            + "; the chosen --task/--criterion cannot honour it")


def _error_with_addrop_hint(self, message):
    one_line = misplaced_addrop_options(message)
    if one_line is None:
        _argparse_error(self, message)
    self.exit(2, f"addrop_fairseq: error: {one_line}\n")


def install_excepthook() -> None:
    """One-line errors: uncaught AddropError, and ``--addrop-*`` options argparse rejects.

    The argparse hook only changes the message for rejected ``--addrop-*`` options; every other
    argparse error keeps its usual form.
    """
    if sys.excepthook is not _one_line:
        sys.excepthook = _one_line
    if argparse.ArgumentParser.error is not _error_with_addrop_hint:
        argparse.ArgumentParser.error = _error_with_addrop_hint

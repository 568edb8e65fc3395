"""The process policy of this package's commands: one-line errors, the argparse hint for
misplaced ``--addrop-*`` options, and the warning filters.

Importing ``addrop_fairseq`` (as ``fairseq-train --user-dir`` does) sets none of this: only a
command that owns its process calls ``run``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import AddropError
from .warning_filters import filter_harmless_warnings


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
    from ..config import AddropScheduleConfig

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


def _argparse_hint(prog: str):
    plain_error = argparse.ArgumentParser.error

    def error(self, message):
        one_line = misplaced_addrop_options(message)
        if one_line is None:
            plain_error(self, message)
        self.exit(2, f"{prog}: error: {one_line}\n")
    return error


def command_name(main: Callable) -> str:
    """``addrop-NAME`` for a main function of ``addrop_fairseq/cli/NAME.py``."""
    module = main.__module__
    if module == "__main__":  # python -m addrop_fairseq.cli.NAME, as the runner starts them
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return "addrop-" + module.rpartition(".")[2].replace("_", "-")


def run(main: Callable[[], object], prog: str | None = None) -> None:
    """Runs a command's ``main`` under the package's process policy and exits.

    AddropError -> ``prog: error: MESSAGE`` on stderr, exit 1; Ctrl-C -> exit 130 without a
    traceback. Worker processes that fairseq spawns re-import the plugin, not this policy; the
    errors they raise reach this process as fairseq reports them.
    """
    prog = prog or command_name(main)
    filter_harmless_warnings()
    argparse.ArgumentParser.error = _argparse_hint(prog)
    try:
        code = main()
    except AddropError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

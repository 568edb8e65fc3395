"""fairseq's argparse tools with this plugin loaded: ``--user-dir`` is never needed.

fairseq imports a plugin only through ``--user-dir``, a path that depends on where the package is
installed; these commands add the installed package's absolute path (so that the workers of a
distributed run import it too) unless the command line names one.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable, List, Sequence

from .. import PLUGIN_DIR
from .policy import run


def with_user_dir(argv: Sequence[str]) -> List[str]:
    """argv plus ``--user-dir <this package>``, unless it sets ``--user-dir`` already."""
    if any(arg == "--user-dir" or arg.startswith("--user-dir=") for arg in argv):
        return list(argv)
    return [*argv, "--user-dir", PLUGIN_DIR]


def fairseq_logging(stream) -> None:
    """fairseq_cli's own log format, which the tools' readers (and people) expect.

    fairseq_cli sets it with ``logging.basicConfig`` when imported, which does nothing once the
    root logger has a handler; importing the plugin first imports fairseq's models, one of which
    (models/wav2vec/wav2vec2_classification.py) calls ``basicConfig`` itself.
    """
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", stream=stream, force=True,
                        level=os.environ.get("LOGLEVEL", "INFO").upper())


def run_fairseq_tool(fairseq_main: Callable[[], None], prog: str) -> None:
    """Runs one of fairseq_cli's ``cli_main`` functions, which read ``sys.argv``.

    The log goes where fairseq-train and fairseq-validate put it (stdout); for the tools whose
    stdout is their output (generate, interactive: the hypotheses) it goes to stderr, where
    fairseq-generate --user-dir puts it too, so that stdout holds the translations alone."""
    fairseq_logging(sys.stderr if prog in ("addrop-generate", "addrop-interactive") else sys.stdout)
    sys.argv = [prog, *with_user_dir(sys.argv[1:])]
    run(fairseq_main, prog)

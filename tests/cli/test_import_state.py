"""Importing the plugin registers its components and changes no process-wide policy.

Run in a fresh interpreter, so that nothing imported by other tests hides a change.
"""
import subprocess
import sys

import pytest

PROBE = r"""
import argparse, sys, warnings

# fairseq and the libraries it loads add warning filters of their own at import: import them
# first, so that what is left to compare is what importing the plugin adds
import fairseq, fairseq.criterions, fairseq.models, fairseq.tasks  # noqa: E401
import transformers, scipy.stats, sklearn.metrics  # noqa: E401

hook, error, filters = sys.excepthook, argparse.ArgumentParser.error, list(warnings.filters)
callers = []
_filterwarnings, _simplefilter = warnings.filterwarnings, warnings.simplefilter


def record(original):
    def wrapped(*args, **kwargs):
        callers.append(sys._getframe(1).f_globals.get("__name__"))
        return original(*args, **kwargs)
    return wrapped


warnings.filterwarnings, warnings.simplefilter = record(_filterwarnings), record(_simplefilter)
import addrop_fairseq  # noqa: E402
from fairseq.tasks import TASK_REGISTRY  # noqa: E402

print("registered", "addrop_translation" in TASK_REGISTRY)
print("excepthook unchanged", sys.excepthook is hook)
print("argparse error unchanged", argparse.ArgumentParser.error is error)
print("filters unchanged", warnings.filters == filters)
print("filters set by the plugin", sorted(c for c in callers if c and c.startswith("addrop_fairseq")))
"""


def test_a_command_sets_its_policy_when_it_runs(monkeypatch, capsys):
    """policy.run: the AddropError line, exit 1; Ctrl-C exit 130; the argparse hint."""
    import argparse

    from addrop_fairseq.cli import policy
    from addrop_fairseq.errors import AddropError

    monkeypatch.setattr(argparse.ArgumentParser, "error", argparse.ArgumentParser.error)
    monkeypatch.setattr("warnings.filters", list(__import__("warnings").filters))

    def bad():
        raise AddropError("--addrop-p=0.0 is outside (0, 1]")

    with pytest.raises(SystemExit) as exit_:
        policy.run(bad, "addrop-x")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "addrop-x: error: --addrop-p=0.0 is outside (0, 1]\n"

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        policy.run(interrupted, "addrop-x")
    assert exit_.value.code == 130

    def misplaced():
        argparse.ArgumentParser(prog="x").parse_args(["--addrop-p", "0.5"])

    with pytest.raises(SystemExit) as exit_:
        policy.run(misplaced, "addrop-x")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("addrop-x: error: unrecognized --addrop-p 0.5: --addrop-p is an option "
                          "of the AD-DROP criteria"), err

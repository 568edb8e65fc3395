"""addrop-benchmark runs end to end on a tiny model and writes its table; timings are not
checked (they depend on the machine), only that every variant ran and was measured. Its report
names no absolute path of the machine and records a commit only from a checkout."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

from addrop_fairseq.benchmark.report import checkout_commit, recorded_command

SCRIPT = ["-m", "addrop_fairseq.cli.benchmark"]
TINY = ["--embed-dim", "16", "--ffn-dim", "32", "--heads", "2", "--encoder-layers", "2",
        "--decoder-layers", "1", "--vocab", "40", "--batch-size", "3", "--seq-len", "7",
        "--reps", "1", "--warmup", "0", "--iga-steps", "2", "--threads", "1"]
VARIANTS = ["plain", "addrop-off", "ga-layer0", "ga-encoder", "ga-decoder", "ga-all",
            "ga-all-cross", "aa", "rd", "iga", "official-ga-layer0", "official-ga-all"]


def run_benchmark(*args):
    return subprocess.run([sys.executable, *SCRIPT, *args], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_free_masks_makes_every_mask_empty_and_keeps_its_shape(monkeypatch):
    import torch

    from addrop_fairseq.benchmark.steps import free_masks
    from addrop_fairseq.core import step

    monkeypatch.setattr(step, "addrop_mask", step.addrop_mask)  # restored after the test
    free_masks()
    valid = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    scores = torch.randn(2, 3, 5, 5)
    ga = step.addrop_mask(scores, valid, 0.3, 0.3, "high", None, finite=True)
    rd = step.addrop_mask(None, valid.expand(2, 3, 5, 5), 0.3, 0.3)
    assert ga.shape == rd.shape == (2, 3, 5, 5) and ga.dtype == torch.bool
    assert not ga.any() and not rd.any()


def test_recorded_command_names_paths_relative_to_where_it_ran_or_to_the_report(tmp_path):
    cwd, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    argv = ["--reps", "3", "--output", str(cwd / "docs" / "bench"),
            f"--output={elsewhere / 'out' / 'bench'}", "--variants", "plain,ga-all",
            str(tmp_path / "a b")]
    command = recorded_command(argv, elsewhere / "out", cwd=cwd)
    assert command == ("addrop-benchmark --reps 3 --output docs/bench --output=bench "
                       "--variants plain,ga-all '../../a b'")
    assert str(tmp_path) not in command


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()

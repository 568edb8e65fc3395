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


@pytest.mark.slow
def test_one_tiny_repetition_writes_json_and_markdown_for_every_variant(tmp_path):
    result = run_benchmark(*TINY, "--output", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == VARIANTS
    for name, row in rows.items():
        assert row["repetitions"] == 1
        assert math.isfinite(row["median_ms"]) and row["median_ms"] > 0, name
        assert row["step_peak_bytes"] > 0 and row["peak_bytes"] > row["step_peak_bytes"], name
        assert math.isfinite(row["time_ratio"]) and math.isfinite(row["memory_ratio"]), name
        assert len(report["times_ms"]["wall"][name]) == len(report["times_ms"]["cpu"][name]) == 1
    assert rows["plain"]["time_ratio"] == 1.0 and rows["plain"]["memory_ratio"] == 1.0
    # the cross-tuned pair is reported for AD-DROP epochs only, not for the plain steps
    assert "cross_tuned_pair_ratio" not in rows["plain"]
    assert "cross_tuned_pair_ratio" not in rows["addrop-off"]
    assert all("cross_tuned_pair_ratio" in rows[name] for name in VARIANTS[2:])
    assert report["config"]["iga_steps"] == 2 and report["config"]["device"] == "cpu"
    markdown = (tmp_path / "bench.md").read_text()
    for name in VARIANTS:
        assert f"| {name} |" in markdown
    assert "| official-ga-all |" in result.stdout
    # the command as the report records it: the output relative to the report, no machine path
    assert f"Command: `addrop-benchmark {' '.join(TINY)} --output bench`" in markdown
    assert str(tmp_path) not in markdown and str(REPO) not in markdown
    assert report["machine"]["commit"] == checkout_commit()


@pytest.mark.slow
def test_unknown_variant_is_a_one_line_error_naming_it():
    result = run_benchmark(*TINY, "--variants", "ga-all,gaa-all")
    assert result.returncode == 2
    assert "'gaa-all'" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_sequence_length_sweep_holds_tokens_and_reports_time_and_memory(tmp_path):
    result = run_benchmark(*TINY, "--sweep", "4,8", "--sweep-tokens", "16",
                           "--variants", "ga-all,rd", "--output", str(tmp_path / "sweep"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert [(r["config"]["seq_len"], r["config"]["batch_size"]) for r in report] == [(4, 4), (8, 2)]
    for r in report:
        rows = {row["variant"]: row for row in r["rows"]}
        assert list(rows) == ["plain", "ga-all", "rd"]
        assert all(math.isfinite(row["step_memory_ratio"]) for row in rows.values())
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| 4 x 4 |" in markdown and "| 8 x 2 |" in markdown
    assert "ga-all step peak" in markdown


@pytest.mark.slow
def test_profile_attention_script_prints_every_part():
    result = subprocess.run([sys.executable, "-m", "addrop_fairseq.cli.profile_attention",
                             "--shapes", "2x8", "--reps", "1"], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 2x8 |" in result.stdout and "record GA" in result.stdout


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


def test_recorded_command_names_paths_relative_to_where_it_ran(tmp_path):
    cwd, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    argv = ["--reps", "3", "--output", str(cwd / "docs" / "bench"),
            f"--output={elsewhere / 'out' / 'bench'}", "--variants", "plain,ga-all",
            str(tmp_path / "a b")]
    command = recorded_command(argv, elsewhere / "out", cwd=cwd)
    assert command == ("addrop-benchmark --reps 3 --output docs/bench "
                       "--output=../elsewhere/out/bench --variants plain,ga-all '../a b'")
    assert str(tmp_path) not in command


def git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow  # runs git
def test_commit_is_the_checkouts_own_and_none_for_a_package_installed_elsewhere(tmp_path):
    clone = tmp_path / "clone"
    package = clone / "addrop_fairseq"
    # a wheel installed into a virtual environment inside the clone
    installed = clone / ".venv" / "lib" / "site-packages" / "addrop_fairseq"
    for folder in (package, installed):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    git("init", "-q", cwd=clone)
    git("add", "addrop_fairseq", cwd=clone)
    git("commit", "-q", "-m", "package", cwd=clone)
    assert checkout_commit(str(package)) == git("rev-parse", "--short", "HEAD", cwd=clone)
    assert checkout_commit(str(installed)) is None
    outside = tmp_path / "site-packages" / "addrop_fairseq"
    outside.mkdir(parents=True)
    assert checkout_commit(str(outside)) is None

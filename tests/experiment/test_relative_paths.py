"""Records and docs name no absolute path of the machine they were made on: the comparison
runner's records, the analyses' JSON, the benchmark's report and every committed file under
docs/ and examples/ (and the README)."""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from addrop_fairseq.experiment.relative import relative_command, relative_path
from addrop_fairseq.experiment.runner import Comparison, read_results
from addrop_fairseq.experiment.spec import build_spec

REPO = next(p for p in Path(__file__).resolve().parents if (p / "setup.py").exists())

# An absolute path where a command or a path field would hold one: at the start, after white
# space, a quote, "=", "(", "," or ":" (not inside a URL: "https://host/home/..." has a letter
# before "/home").
MACHINE_PATH = re.compile(
    r"(?:^|[\s\"'`=(,:])(/(?:work|root|home|tmp|scratch|mnt|data|opt|srv|var|usr|Users|private)"
    r"/[^\s\"'`)]*)",
    re.MULTILINE,
)


def machine_paths(text: str) -> list[str]:
    return MACHINE_PATH.findall(text)


def test_the_pattern_finds_machine_paths_and_leaves_relative_ones():
    found = machine_paths(
        '{"command": "/work/main/.venv/bin/python -m x --save-dir=/tmp/a/b", "data": "/home/u/d"}'
        "\n/root/x (`/scratch/y`) https://github.com/home/z runs/compare/x ../shared/data/f.sh"
    )
    assert found == ["/work/main/.venv/bin/python", "/tmp/a/b", "/home/u/d", "/root/x",
                     "/scratch/y"]


def test_relative_command_writes_every_absolute_path_relative_to_the_base(tmp_path):
    base = tmp_path / "repo"
    outside = tmp_path / "elsewhere" / "data"
    command = [
        str(base / ".venv" / "bin" / "python"), "-m", "addrop_fairseq.cli.train",
        str(base / "data-bin" / "x"), "--save-dir", str(base / "runs" / "a" / "seed1"),
        "--restore-file", str(outside / "model.pt"), f"--user-dir={base / 'addrop_fairseq'}",
        f"task.data={outside}", "--adam-betas", "(0.9,0.98)", "--lr", "1e-4", "relative/kept",
    ]
    assert shlex.split(relative_command(command, base)) == [
        ".venv/bin/python", "-m", "addrop_fairseq.cli.train", "data-bin/x",
        "--save-dir", "runs/a/seed1", "--restore-file", "../elsewhere/data/model.pt",
        "--user-dir=addrop_fairseq", "task.data=../elsewhere/data", "--adam-betas", "(0.9,0.98)",
        "--lr", "1e-4", "relative/kept",
    ]
    # this interpreter outside the base is named, not located; inside it, located relatively
    assert relative_command([sys.executable, "-V"], tmp_path) == shlex.join(
        [Path(sys.executable).name, "-V"])
    environment = Path(sys.executable).parents[1]
    assert relative_command([sys.executable], environment) == os.path.relpath(sys.executable,
                                                                              environment)
    assert relative_path(base / "x", base) == "x" and relative_path("a/b", base) == "a/b"
    # the default base is the working directory
    assert relative_path(Path.cwd() / "runs" / "x") == "runs/x"


def _fake_spawn(code):
    """Stands in for fairseq-train: one dev epoch in fairseq's JSON log, exit ``code``."""

    def spawn(self, command, log_file, env, on_sample):
        log_file.write('x | INFO | valid | {"epoch": 1, "valid_loss": "1.0", "valid_f1": "50"}\n')
        log_file.flush()
        return code, 0.5

    return spawn


def test_the_analyses_json_names_the_checkpoint_and_data_relatively(tmp_path, monkeypatch):
    from analysis_fixtures import TRANSLATION, build, save, write_translation_data

    from addrop_fairseq.cli import plot_attribution, probe_attribution

    # an untrained model: what is checked is where the paths go, not what the maps show
    data = write_translation_data(tmp_path / "work" / "translation-data", (("valid", 8),))
    cfg, _task, model, _criterion = build(data, TRANSLATION)
    checkpoint = save(cfg, model, tmp_path / "work" / "translation.pt")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "docs" / "img"
    assert plot_attribution.main([
        "--path", str(checkpoint), "--data", str(data), "--split", "valid", "--index", "0",
        "--layers", "0", "--heads", "0", "--out", str(out / "maps.png"), "--cpu"]) == 0
    assert probe_attribution.main([
        "--path", str(checkpoint), "--data", str(data), "--k", "0,50", "--orders", "high",
        "--layers", "0", "--batch-size", "8", "--max-examples", "8",
        "--out", str(out / "probe.png"), "--cpu"]) == 0
    for name in ("maps.json", "probe.json"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and machine_paths(text) == []
        result = json.loads(text)
        assert result["checkpoint"] == "work/translation.pt"
        assert result["data"] == "work/translation-data"


def test_the_benchmark_report_records_its_command_relatively(tmp_path, monkeypatch):
    from addrop_fairseq.benchmark import report as benchmark

    monkeypatch.chdir(tmp_path)
    output = tmp_path / "bench" / "cpu"
    argv = ["--preset", "cpu", "--reps", "2", "--output", str(output)]
    args = argparse.Namespace(output=output, device="cpu", dtype="fp32")
    result = {"machine": {"torch": "x", "threads": 1}, "memory_measure": "none"}
    benchmark.write_report(args, argv, "table", result)
    report = (tmp_path / "bench" / "cpu.md").read_text()
    assert "Command: `addrop-benchmark --preset cpu --reps 2 --output bench/cpu`" in report
    assert str(tmp_path) not in report and machine_paths(report) == []


def _committed_files():
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--", "docs", "examples", "README.md"],
        capture_output=True, text=True,
    )
    if tracked.returncode == 0 and tracked.stdout:
        return [REPO / name for name in tracked.stdout.split("\0") if name]
    # not a git checkout (an unpacked source archive): every file there
    return [p for d in ("docs", "examples") for p in (REPO / d).rglob("*") if p.is_file()] + [
        REPO / "README.md"]

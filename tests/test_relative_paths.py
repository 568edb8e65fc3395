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


@pytest.mark.slow
@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_runner_record_names_no_absolute_path(where, tmp_path, monkeypatch):
    """Data, plugin, checkpoint and output directories given as absolute paths; the runner runs
    from a directory that holds them ("inside") or from a sibling ("outside")."""
    repo = tmp_path / "repo"
    data = repo / "data-bin" / "tiny"
    data.mkdir(parents=True)
    (data / "train.x").write_text("x")
    cwd = repo if where == "inside" else tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    spec = build_spec({
        "data": str(data),
        "train": f"--user-dir {repo / 'addrop_fairseq'} --restore-file {repo / 'model.pt'}",
        "arms": {"plain": "--addrop-schedule off", "broken": "--addrop-schedule cross"},
        "seeds": [1],
        "select": {"metric": "f1", "maximize": True},
        "valid_on_train": True,
    })
    comparison = Comparison(spec, repo / "out", echo=lambda *_: None)
    monkeypatch.setattr(Comparison, "_spawn", _fake_spawn(0))
    comparison.restrict(["plain"])
    comparison.run()
    monkeypatch.setattr(Comparison, "_spawn", _fake_spawn(1))
    comparison.restrict(["broken"])
    comparison.run()

    text = (repo / "out" / "results.jsonl").read_text()
    assert str(tmp_path) not in text and machine_paths(text) == []
    records = {r["arm"]: r for r in read_results(repo / "out" / "results.jsonl")}
    assert records["plain"]["status"] == "ok" and records["broken"]["status"] == "failed"
    for arm, record in records.items():
        words = shlex.split(record["command"])
        assert not any(os.path.isabs(w) for w in words)
        # read from the directory the runner ran in, the paths lead to the real places
        run_dir = repo / "out" / "runs" / arm / "seed1"
        assert (cwd / record["run_dir"]).resolve() == run_dir.resolve()
        save_dir = words[words.index("--save-dir") + 1]
        assert (cwd / save_dir).resolve() == (run_dir / "checkpoints").resolve()
        restore = words[words.index("--restore-file") + 1]
        assert (cwd / restore).resolve() == (repo / "model.pt").resolve()
        assert (cwd / words[3]).resolve() == (repo / "out" / "runs" / "data-with-trainset").resolve()
    error = records["broken"]["error"]
    log = relative_path(repo / "out" / "runs" / "broken" / "seed1" / "train.log")
    assert error.endswith(f"(log: {log})"), error
    if where == "inside":
        assert records["plain"]["run_dir"] == "out/runs/plain/seed1"


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


@pytest.mark.slow
def test_no_committed_doc_or_record_names_a_machine_path():
    files = _committed_files()
    assert any(f.name == "results.jsonl" for f in files)  # the scan sees the records
    found = []
    for path in files:
        content = path.read_bytes()
        if b"\0" in content:  # images
            continue
        for match in machine_paths(content.decode("utf-8", errors="replace")):
            found.append(f"{path.relative_to(REPO)}: {match}")
    assert found == [], "\n".join(found[:20])

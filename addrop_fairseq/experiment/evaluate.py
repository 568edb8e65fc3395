"""Test evaluation of a run's dev-selected checkpoint, through this project's own commands.

Each kind runs the documented command (the one a user would type) in a subprocess and reads its
final line, so the comparison's test numbers are exactly what ``addrop-evaluate-ner``,
``addrop-generate`` + ``addrop-score-bleu`` and ``addrop-evaluate-glue`` print.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from ..errors import AddropError
from .relative import relative_path



def _command(name: str) -> list[str]:
    """The installed command ``addrop-NAME`` run by this interpreter (``-m``: no PATH lookup)."""
    return [sys.executable, "-m", f"addrop_fairseq.cli.{name}"]


def _run(command: list[str], log: Path, env: dict) -> str:
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True, env=env)
        out.write(done.stdout)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise AddropError(f"{command[2] if command[1] == '-m' else Path(command[1]).name} exited {done.returncode}: {' / '.join(tail)}")
    return done.stdout


def evaluate_test(
    test: dict,
    data: str,
    checkpoint: Path,
    run_dir: Path,
    user_dir: str | None,
    env: dict,
    cpu: bool = False,
) -> dict:
    """{"test_metric": value, ...} for the spec's ``test`` section; {} for kind ``none``.

    ``cpu``: the runs trained with --cpu, so the evaluation stays off the GPU too."""
    kind, split = test.get("kind", "none"), str(test.get("split", "test"))
    log = run_dir / "test.log"
    extra = [str(option) for option in test.get("options", [])] + (["--cpu"] if cpu else [])
    if kind == "none":
        return {}
    if kind == "ner":
        out = _run(
            [
                *_command("evaluate_ner"),
                "--data",
                data,
                "--path",
                str(checkpoint),
                "--split",
                split,
                "--output-dir",
                str(run_dir / "test"),
                *extra,
            ],
            log,
            env,
        )
        match = re.search(r"precision ([\d.]+) \| recall ([\d.]+) \| f1 ([\d.]+)", out)
        if not match:
            raise AddropError(f"{relative_path(log)}: addrop-evaluate-ner printed no 'precision | recall | f1' line")
        return {
            "test_metric": float(match[3]),
            "test_precision": float(match[1]),
            "test_recall": float(match[2]),
        }
    if kind == "translation":
        generated = run_dir / f"generate.{split}.txt"
        options = ["--beam", "4", "--batch-size", "64", "--post-process", "sentencepiece", *extra]
        command = [
            *_command("generate"),
            data,
            "--gen-subset",
            split,
            "--path",
            str(checkpoint),
            "--required-batch-size-multiple",
            "1",
            *options,
        ]
        if user_dir:
            command += ["--user-dir", user_dir]
        generated.write_text(_run(command, log, env), encoding="utf-8")
        out = _run(
            [*_command("score_bleu"), "--generate-output", str(generated)],
            log,
            env,
        )
        match = re.search(r"BLEU = ([\d.]+).*\((\d+) sentences\)", out)
        signature = re.search(r"signature: (\S+)", out)
        if not match:
            raise AddropError(f"{relative_path(log)}: addrop-score-bleu printed no BLEU line")
        return {
            "test_metric": float(match[1]),
            "test_sentences": int(match[2]),
            "test_signature": signature[1] if signature else None,
        }
    if kind == "glue":
        metric = test.get("metric")
        out = _run(
            [
                *_command("evaluate_glue"),
                "--data",
                data,
                "--path",
                str(checkpoint),
                "--split",
                split,
                *extra,
            ],
            log,
            env,
        )
        scores = json.loads(out.strip().splitlines()[-1])
        if metric not in scores:
            raise AddropError(
                f"test.metric {metric!r} is not among addrop-evaluate-glue's "
                f"{', '.join(sorted(scores))}"
            )
        return {"test_metric": float(scores[metric])}
    raise AddropError(f"test.kind {kind!r} is not one of ner, translation, glue, none")

"""addrop-compare end to end on a tiny NER corpus: arms x seeds, a failing arm, kill + resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_ner_fixtures import REPO, prepared_corpus

pytestmark = pytest.mark.slow

SPEC = """\
data: {data}
train: >-
  --user-dir {plugin} --task addrop_tagging --criterion addrop_tagging --cpu
  --arch addrop_tagger_tiny --encoder-embed-dim 32 --encoder-ffn-embed-dim 64
  --optimizer adam --lr 3e-3 --lr-scheduler inverse_sqrt --warmup-updates 10
  --max-tokens 800 --max-epoch 3 --num-workers 0
arms:
  plain: --addrop-schedule off
  ga: --addrop-schedule cross --addrop-p 0.3 --addrop-q 0.3
  broken: --addrop-p 7
seeds: [1, 2]
select: {{metric: f1, maximize: true}}
test: {{kind: ner, split: test}}
valid_on_train: true
"""


def compare(spec, out, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m", "addrop_fairseq.cli.compare",
            str(spec),
            "--out",
            str(out),
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def records(out):
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_compare_runs_arms_and_seeds_survives_a_kill_and_records_failures(tmp_path, plugin_dir):
    data = prepared_corpus(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(data=data, plugin=plugin_dir))
    out = tmp_path / "out"

    # killed (SIGKILL, the whole process group) as soon as the first run is recorded
    first = compare(spec, out)
    deadline = time.time() + 300
    while not records(out) and time.time() < deadline and first.poll() is None:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = records(out)
    assert len(done_before) >= 1, first.stdout.read()
    assert done_before[0]["arm"] == "plain" and done_before[0]["seed"] == 1

    second = compare(spec, out, "--jobs", "2")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"{len(done_before)} recorded" in output and "ETA" in output
    final = records(out)
    assert final[: len(done_before)] == done_before  # nothing finished was rerun or rewritten
    keys = [(r["arm"], r["seed"]) for r in final]
    assert sorted(keys) == sorted({(a, s) for a in ("plain", "ga", "broken") for s in (1, 2)})
    by_key = {(r["arm"], r["seed"]): r for r in final}
    assert by_key[("plain", 1)]["run_dir"].endswith("plain/seed1")
    plain_log = (out / "runs" / "plain" / "seed1" / "train.log").read_text()
    assert plain_log.count("\n### ") == 1  # trained once

    for arm in ("plain", "ga"):
        for seed in (1, 2):
            record = by_key[(arm, seed)]
            assert record["status"] == "ok", record.get("error")
            epochs = record["epochs"]
            assert [e["epoch"] for e in epochs] == [1, 2, 3]
            assert all(
                np.isfinite(
                    [e["train_loss"], e["valid_loss"], e["trainset_loss"], e["valid_metric"]]
                ).all()
                for e in epochs
            )
            assert record["best"]["valid_metric"] == max(e["valid_metric"] for e in epochs)
            assert 0 <= record["test_metric"] <= 100 and record["wall_s"] > 0
            assert record["code"] and len(record["code"].split("+")[0]) == 40  # the commit
            assert not (out / "runs" / arm / f"seed{seed}" / "checkpoints").exists()
    assert [e["addrop"] for e in by_key[("ga", 1)]["epochs"]] == [0, 1, 0]
    assert by_key[("ga", 1)]["epochs"][1]["addrop_drop"] > 0
    # the test metric is what addrop-evaluate-ner printed for the dev-chosen checkpoint
    assert (
        f"f1 {by_key[('ga', 2)]['test_metric']:.2f}"
        in (out / "runs" / "ga" / "seed2" / "test" / "test.report.txt").read_text()
    )
    for seed in (1, 2):
        broken = by_key[("broken", seed)]
        assert broken["status"] == "failed" and "--addrop-p" in broken["error"]

    summary = (out / "summary.md").read_text()
    assert "| plain | 2/2 |" in summary and "| ga | 2 |" in summary
    assert "- broken seed 1: fairseq-train exited" in summary
    import matplotlib.image

    image = matplotlib.image.imread(out / "curves.png")
    assert (out / "curves.png").stat().st_size > 1000 and np.ptp(image) > 0

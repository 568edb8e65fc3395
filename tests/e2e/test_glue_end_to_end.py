"""GLUE end to end: made-up TSV files -> prepare_glue.py -> fairseq-train with AD-DROP
cross-tuning -> addrop-evaluate-glue (metrics and a submission file), for a pair classification task
(MRPC-shaped: accuracy and F1) and a regression task (STS-B-shaped: Pearson and Spearman)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from test_glue_data import make_tokenizer, prepare_glue, write_mrpc, write_stsb

from conftest import REPO  # noqa: E402
TINY = ["--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--max-positions", "64"]


def train(data, save_dir, plugin_dir, *extra):
    result = run_cli(
        "fairseq_cli.train", data, "--user-dir", plugin_dir, "--task", "addrop_sentence_prediction",
        "--criterion", "addrop_sentence_prediction", "--init-token", "0", "--separator-token", "2",
        *TINY, "--optimizer", "adam", "--lr", "3e-3", "--batch-size", "16", "--max-epoch", "3",
        "--cpu", "--seed", "1", "--save-dir", save_dir, "--no-epoch-checkpoints",
        "--maximize-best-checkpoint-metric", "--log-format", "json", "--log-interval", "100",
        "--addrop-p", "0.3", "--addrop-q", "0.3", *extra)
    logs = [json.loads(m) for m in re.findall(r"\| (?:train|valid) \| (\{.*\})", result.stderr + result.stdout)]
    valid = [log for log in logs if "valid_loss" in log]
    train_epochs = [log for log in logs if "train_loss" in log]
    assert len(valid) == 3 and len(train_epochs) == 3, result.stderr[-3000:]
    return valid, train_epochs


def evaluate(*args):
    """One JSON report per split, keyed by split."""
    result = subprocess.run([sys.executable, "-m", "addrop_fairseq.cli.evaluate_glue", *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {report["split"]: report for report in reports}


@pytest.mark.slow
def test_pair_classification_trains_with_ad_drop_and_scores_like_validation(tmp_path, plugin_dir):
    raw = write_mrpc(tmp_path / "raw", sizes=(320, 80, 40))
    data = tmp_path / "bin"
    prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(data),
                       "--hf-tokenizer", str(make_tokenizer(tmp_path / "tok")), "--max-len", "32"])
    valid, epochs = train(data, tmp_path / "ckpt", plugin_dir, "--best-checkpoint-metric", "acc_and_f1")
    # cross-tuning: plain odd epochs, AD-DROP even epochs, with positions really dropped
    assert [float(e["train_addrop"]) for e in epochs] == [0, 1, 0]
    assert float(epochs[1]["train_addrop_drop"]) > 0.01
    for log in valid:
        assert {"valid_accuracy", "valid_f1", "valid_acc_and_f1"} <= set(log)
    best = max(float(log["valid_acc_and_f1"]) for log in valid)
    assert best > 75  # the made-up task is learnable; chance is about 50

    reports = evaluate("--data", data, "--path", tmp_path / "ckpt" / "checkpoint_best.pt",
                       "--split", "valid,test", "--submission-dir", tmp_path / "submission", "--cpu")
    scores, test = reports["valid"], reports["test"]
    assert scores["examples"] == 80 and "submission" not in scores
    assert scores["acc_and_f1"] == pytest.approx(best, abs=1e-3)  # the same model, the same data
    assert scores["acc_and_f1"] == pytest.approx((scores["accuracy"] + scores["f1"]) / 2, abs=1e-9)
    lines = (tmp_path / "submission" / "MRPC.tsv").read_text().splitlines()
    assert test["submission"].endswith("MRPC.tsv") and "accuracy" not in test
    assert lines[0] == "index\tprediction" and len(lines) == 41
    assert [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(40)]
    assert {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}


@pytest.mark.slow
def test_regression_trains_with_ad_drop_and_scores_like_validation(tmp_path, plugin_dir):
    raw = write_stsb(tmp_path / "raw", sizes=(320, 80, 40))
    data = tmp_path / "bin"
    prepare_glue.main(["--task", "stsb", "--input", str(raw), "--dest", str(data),
                       "--hf-tokenizer", str(make_tokenizer(tmp_path / "tok"))])
    valid, epochs = train(data, tmp_path / "ckpt", plugin_dir, "--regression-target",
                          "--best-checkpoint-metric", "pearson", "--addrop-layers", "0")
    assert [float(e["train_addrop"]) for e in epochs] == [0, 1, 0]
    best = max(float(log["valid_pearson"]) for log in valid)
    assert best > 80
    reports = evaluate("--data", data, "--path", tmp_path / "ckpt" / "checkpoint_best.pt",
                       "--split", "valid,test", "--submission-dir", tmp_path / "submission",
                       "--predictions-dir", tmp_path / "predictions", "--cpu")
    scores = reports["valid"]
    assert scores["pearson"] == pytest.approx(best, abs=1e-3)
    assert set(scores) == {"split", "examples", "pearson", "spearman", "pearson_and_spearman"}
    rows = (tmp_path / "submission" / "STS-B.tsv").read_text().splitlines()[1:]
    raw_predictions = [float(v) for v in (tmp_path / "predictions" / "test.txt").read_text().split()]
    assert len(rows) == len(raw_predictions) == 40
    for row, value in zip(rows, raw_predictions):
        assert float(row.split("\t")[1]) == pytest.approx(min(5.0, max(0.0, value)), abs=5e-4)

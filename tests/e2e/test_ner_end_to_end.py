"""fairseq-train --task addrop_tagging end to end: cross-tuning, F1 selection, evaluation, and
fine-tuning a RoBERTa checkpoint through --finetune-from-model."""
import re

import pytest

from conftest import run_cli
from test_ner_fixtures import REPO, prepared_corpus, roberta_checkpoint, tagging_setup

pytestmark = pytest.mark.slow

TRAIN = ["--task", "addrop_tagging", "--criterion", "addrop_tagging", "--cpu", "--seed", "1",
         "--optimizer", "adam", "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt",
         "--warmup-updates", "10", "--max-tokens", "800", "--addrop-p", "0.3", "--addrop-q", "0.3",
         "--addrop-schedule", "cross", "--best-checkpoint-metric", "f1",
         "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints", "--log-format", "simple",
         "--log-interval", "1", "--num-workers", "0"]


def valid_scores(log: str):
    return [float(m) for m in re.findall(r"valid on 'valid' subset .*?\| f1 ([\d.]+)", log)]


def test_train_with_addrop_epochs_select_on_f1_and_evaluate(tmp_path, plugin_dir):
    data = prepared_corpus(tmp_path)
    save = tmp_path / "checkpoints"
    result = run_cli("fairseq_cli.train", data, "--user-dir", plugin_dir, "--arch",
                     "addrop_tagger_tiny", *TRAIN, "--max-epoch", "4", "--save-dir", save)
    log = result.stdout + result.stderr
    assert "epoch 002: AD-DROP on" in log and "epoch 003: AD-DROP off" in log
    epochs = re.findall(r"\| train \| epoch (\d+) \| .*?\| addrop (\d)", log)
    assert [(int(e), int(a)) for e, a in epochs] == [(1, 0), (2, 1), (3, 0), (4, 1)]
    drop = [float(x) for x in re.findall(r"\| train \| epoch 00[24] .*?addrop_drop ([\d.]+)", log)]
    assert len(drop) == 2 and all(0.02 < x < 0.3 for x in drop)  # about p * q of the keys
    scores = valid_scores(log)
    assert len(scores) == 4 and re.search(r"\| word_accuracy [\d.]+ \|", log)
    assert max(scores) > 0, f"no entity found after 4 epochs: {scores}"
    assert float(re.findall(r"best_f1 ([\d.]+)", log)[-1]) == max(scores)

    # the evaluation script rescored checkpoint_best with seqeval: the same F1 as in training
    out = tmp_path / "eval"
    evaluated = run_cli("addrop_fairseq.cli.evaluate_ner", "--data", data, "--path", save / "checkpoint_best.pt",
                        "--split", "valid", "--output-dir", out, cwd=REPO)
    f1 = float(re.search(r"valid: 40 sentences \| .* f1 ([\d.]+)", evaluated.stdout).group(1))
    assert f1 == pytest.approx(max(scores), abs=0.01)
    rows = (out / "valid.pred.conll").read_text().split("\n\n")
    gold = (data / "raw" / "valid.conll").read_text().split("\n\n")
    assert len([r for r in rows if r.strip()]) == 40
    for predicted, expected in zip(rows, gold):
        assert [line.split()[:2] for line in predicted.splitlines()] == \
            [line.split() for line in expected.splitlines()]
    assert "micro avg" in (out / "valid.report.txt").read_text()


def test_pretrained_roberta_checkpoint_fine_tunes_through_finetune_from_model(tmp_path, plugin_dir):
    data = prepared_corpus(tmp_path)
    size = ["--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
            "--encoder-attention-heads", "4"]
    # fairseq's RobertaModel with this data's dictionary, saved in fairseq's checkpoint layout
    # (fairseq 0.12's masked_lm task cannot run under numpy 2 to pre-train one here)
    task, _, _ = tagging_setup(data, *size, "--max-positions", "128", arch="addrop_roberta_tagger")
    pretrained = tmp_path / "roberta.pt"
    roberta_checkpoint(task, pretrained)
    result = run_cli("fairseq_cli.train", data, "--user-dir", plugin_dir, "--arch",
                     "addrop_roberta_tagger", *size, "--max-positions", "128", *TRAIN,
                     "--max-epoch", "2", "--save-dir", tmp_path / "tagger",
                     "--finetune-from-model", pretrained)
    log = result.stdout + result.stderr
    assert "starting a new tagging head" in log
    assert re.search(r"Loaded checkpoint .*roberta.pt", log)
    assert re.search(r"\| train \| epoch 002 \| .*\| addrop 1 \|", log)
    assert len(valid_scores(log)) == 2

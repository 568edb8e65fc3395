"""Experiment tracking: fairseq-train --tensorboard-logdir records AD-DROP's scalars beside
fairseq's (the ``tensorboard`` extra), read back with TensorBoard's own event reader."""
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_event_files_hold_the_addrop_scalars(tmp_path, plugin_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_convert_marian import toy_pairs
    from test_recipes import write_pairs

    raw, data, logdir = tmp_path / "raw", tmp_path / "bin", tmp_path / "tb"
    write_pairs(raw, "train", toy_pairs(1, 16))
    write_pairs(raw, "valid", toy_pairs(2, 8))
    run_cli("fairseq_cli.preprocess", "-s", "en", "-t", "ro", "--joined-dictionary",
            "--trainpref", raw / "train", "--validpref", raw / "valid", "--destdir", data,
            "--workers", "1")
    # one batch an epoch: update 1 is plain (epoch 1), update 2 AD-DROP (epoch 2)
    run_cli("fairseq_cli.train", data, "--user-dir", plugin_dir, "--cpu", "--seed", "1",
            "--task", "addrop_translation", "--arch", "addrop_transformer",
            "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16",
            "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
            "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
            "--decoder-attention-heads", "2", "--criterion", "addrop_label_smoothed_cross_entropy",
            "--addrop-p", "0.5", "--addrop-q", "0.5", "--optimizer", "adam", "--lr", "1e-3",
            "--max-tokens", "4000", "--max-update", "2", "--log-interval", "1",
            "--save-dir", tmp_path / "checkpoints", "--no-save",
            "--tensorboard-logdir", logdir)

    scalars = {}
    for run in ("train", "train_inner", "valid"):
        events = EventAccumulator(str(logdir / run))
        events.Reload()
        scalars[run] = {tag: [(e.step, e.value) for e in events.Scalars(tag)]
                        for tag in events.Tags()["scalars"]}
    # per update and per epoch: the phase and the realised fraction of dropped positions
    assert [step for step, _ in scalars["train_inner"]["addrop_drop"]] == [1, 2]
    assert [value for _, value in scalars["train_inner"]["addrop"]] == [0, 1]
    assert scalars["train_inner"]["addrop_drop"][0][1] == 0
    assert 0 < scalars["train_inner"]["addrop_drop"][1][1] < 0.5  # about p * q = 0.25 of the keys
    assert [value for _, value in scalars["train"]["addrop"]] == [0, 1]
    assert {"loss", "nll_loss", "lr"} <= set(scalars["train"])  # fairseq's own, beside them
    assert "loss" in scalars["valid"] and "addrop_drop" not in scalars["valid"]

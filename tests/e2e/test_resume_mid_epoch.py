"""A run SIGKILLed in the middle of an epoch resumes to the parameters of the run that was never
killed: translation (with the comparison runner's linked ``trainset`` validation), NER (both batch
orders) and GLUE, the last two from a converted encoder with ``--finetune-from-model``.

fairseq writes a checkpoint inside an epoch only with ``--save-interval-updates N`` (and then also
validates there); without it a kill loses the epoch in progress and the run resumes from the end
of the previous one (tests/test_resume.py, tests/test_finetune_resume.py). What a mid-epoch resume
has to restore: the position in the epoch's batches (fairseq's iterator state), the batches
themselves (drawn as at epoch 1, tasks/cross_tuning.py and the NER task's length order), dropout
and AD-DROP's draws (seeded by the update number), the optimizer and the learning-rate schedule,
and --patience's count (tasks/resume.py).
"""
import re
import time

import pytest

from addrop_fairseq.experiment.runner import TRAINSET, data_with_trainset
from conftest import PLUGIN
from test_finetune_resume import (LOADED, assert_resumed_to_the_same_end, converted,  # noqa: F401
                                  fairseq_train, load_checkpoint, ner_command, run, run_killed)
from test_resume import TINY_TRANSFORMER, tiny_translation_data

pytestmark = pytest.mark.slow


def mid_epoch(epoch_wanted):
    """Kill once fairseq has saved checkpoint_EPOCH_UPDATES.pt, its mid-epoch checkpoint."""
    def after(epoch, updates, line):
        return epoch == epoch_wanted and f"checkpoint_{epoch}_{updates}.pt" in line
    return after


def killed_mid_epoch_and_resumed(command_for, tmp_path, epoch: int, what: str):
    started = time.perf_counter()
    run(command_for(tmp_path / "whole"))
    command = command_for(tmp_path / "split")
    _, killed_at = run_killed(command, mid_epoch(epoch))
    halfway = load_checkpoint(tmp_path / "split" / "checkpoint_last.pt")
    assert halfway["extra_state"]["train_iterator"]["iterations_in_epoch"] > 0, "not mid-epoch"
    assert halfway["extra_state"]["train_iterator"]["epoch"] == epoch
    resumed = run(command)
    assert_resumed_to_the_same_end(tmp_path / "whole", tmp_path / "split", resumed, killed_at,
                                   f"{what}, killed in epoch {epoch}")
    print(f"wall {time.perf_counter() - started:.1f} s")
    return resumed


def test_translation_killed_mid_epoch_resumes_exactly_with_trainset_validation(tmp_path):
    data = data_with_trainset(str(tiny_translation_data(tmp_path / "data")), tmp_path / "linked")

    def command(save_dir):
        return fairseq_train(
            data, "--user-dir", PLUGIN, "--task", "addrop_translation", *TINY_TRANSFORMER,
            "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--dropout", "0.1", "--addrop-schedule", "cross", "--optimizer", "adam",
            "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "5",
            "--max-tokens", "400", "--max-epoch", "4", "--save-interval-updates", "3",
            "--valid-subset", f"valid,{TRAINSET}", "--seed", "4", "--cpu", "--save-dir", save_dir,
            "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "1",
            "--num-workers", "0")

    resumed = killed_mid_epoch_and_resumed(command, tmp_path, 2, "translation, AD-DROP epoch")
    assert "epoch 002: AD-DROP on" in resumed and f'begin validation on "{TRAINSET}" subset' in resumed


@pytest.mark.parametrize("order", ["length", "random"])
def test_ner_fine_tuning_killed_mid_epoch_resumes_exactly(converted, tmp_path, order):  # noqa: F811
    def command(save_dir):
        return ner_command(converted, save_dir, "--batch-order", order,
                           "--save-interval-updates", "4")

    killed_mid_epoch_and_resumed(command, tmp_path, 2, f"NER, --batch-order {order}")


def test_glue_fine_tuning_killed_mid_epoch_resumes_exactly(converted, tmp_path):  # noqa: F811
    from test_glue_data import prepare_glue, write_mrpc

    data = tmp_path / "glue"
    prepare_glue.main(["--task", "mrpc", "--input", str(write_mrpc(tmp_path / "raw", sizes=(48, 16, 16))),
                       "--dest", str(data), "--hf-tokenizer", str(converted.conversion.tokenizer),
                       "--dict", str(converted.conversion.dictionary), "--layout", "bert",
                       "--max-len", "32"])

    def command(save_dir):
        return fairseq_train(
            data, "--user-dir", PLUGIN, "--task", "addrop_sentence_prediction",
            "--init-token", "0", *converted.conversion.model_arguments,
            "--finetune-from-model", converted.checkpoint,
            "--criterion", "addrop_sentence_prediction", "--addrop-p", "0.3", "--addrop-q", "0.2",
            "--addrop-layers", "all", "--addrop-schedule", "cross", "--optimizer", "adam",
            "--adam-betas", "(0.9, 0.999)", "--adam-eps", "1e-6", "--weight-decay", "0.01",
            "--clip-norm", "1.0", "--lr", "1e-3", "--lr-scheduler", "fixed", "--batch-size", "16",
            "--max-epoch", "3", "--save-interval-updates", "2", "--best-checkpoint-metric",
            "accuracy", "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints",
            "--seed", "2", "--cpu", "--save-dir", save_dir, "--log-format", "json",
            "--log-interval", "1", "--num-workers", "0")

    killed_mid_epoch_and_resumed(command, tmp_path, 2, "GLUE (MRPC-shaped)")


def test_patience_counts_on_across_a_resume(tmp_path):
    """fairseq keeps --patience's count outside its checkpoints; the AD-DROP tasks save it. The
    "best" here is the highest dev loss, so every epoch after the first fails to improve and the
    run stops after epoch 1 + patience."""
    data = tiny_translation_data(tmp_path / "data")

    def command(save_dir):
        return fairseq_train(
            data, "--user-dir", PLUGIN, "--task", "addrop_translation", *TINY_TRANSFORMER,
            "--criterion", "addrop_label_smoothed_cross_entropy", "--addrop-schedule", "off",
            "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "800", "--max-epoch", "10",
            "--patience", "3", "--maximize-best-checkpoint-metric", "--seed", "1", "--cpu",
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "simple",
            "--num-workers", "0")

    whole = run(command(tmp_path / "whole"))
    assert "early stop since valid performance hasn't improved for last 3 runs" in whole
    stopped = load_checkpoint(tmp_path / "whole" / "checkpoint_last.pt")
    assert stopped["extra_state"]["train_iterator"]["epoch"] == 5  # stopped after epoch 4
    split = command(tmp_path / "split")
    epoch, killed_at = run_killed(split, lambda epoch, updates, line: epoch == 2)
    resumed = run(split)
    assert re.search(r"epoch 00[34]", resumed) and not re.search(r"epoch 00[5-9]", resumed)
    assert_resumed_to_the_same_end(tmp_path / "whole", tmp_path / "split", resumed, killed_at,
                                   "--patience 3, resumed after epoch 2")

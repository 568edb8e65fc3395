"""A killed fine-tuning run resumes where it stopped, with the command that started it.

The documented commands start from a converted pretrained model with ``--finetune-from-model``:
fairseq loads the model while ``--save-dir`` has no ``checkpoint_last.pt`` and resumes that file
afterwards. (``--restore-file MODEL --reset-*``, the form the commands had before, loads MODEL at
every launch: the run starts over, which the plugin warns about.) Each process-starting test here
trains a tiny converted BERT, SIGKILLs it after a checkpoint, starts the same command again, and
compares the end with an uninterrupted run of that command; mid-epoch kills (with
``--save-interval-updates``) are checked for translation, NER and GLUE.
"""
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import addrop_fairseq  # noqa: F401  (registers the components, the allow-list, the checks)
from addrop_fairseq.errors import AddropError
from addrop_fairseq.experiment.resume import continuation, same_start
from addrop_fairseq.tasks import resume
from conftest import PLUGIN, REPO
from test_resume import TINY_TRANSFORMER, load_checkpoint, max_parameter_difference, tiny_translation_data

TOLERANCE = 1e-6
SAVED = re.compile(r"Saved checkpoint \S+ \(epoch (\d+) @ (\d+) updates")
LOADED = re.compile(r"Loaded checkpoint (\S+) \(epoch (\d+) @ (\d+) updates\)")


# ---------------------------------------------------------------- the warning, without processes

def checkpoint_cfg(save_dir, **options):
    defaults = dict(save_dir=str(save_dir), restore_file="checkpoint_last.pt",
                    finetune_from_model=None, reset_optimizer=False, reset_lr_scheduler=False,
                    reset_meters=False, reset_dataloader=False)
    return SimpleNamespace(**{**defaults, **options})


def test_restarting_from_restore_file_over_a_last_checkpoint_warns_in_one_line(tmp_path, caplog):
    save = tmp_path / "checkpoints"
    save.mkdir()
    model = tmp_path / "model.pt"
    model.write_bytes(b"pretrained")
    restart = checkpoint_cfg(save, restore_file=str(model), reset_optimizer=True,
                             reset_dataloader=True, reset_meters=True)
    assert resume.restart_warning(restart) is None  # nothing to lose yet

    (save / "checkpoint_last.pt").write_bytes(b"trained")
    warning = resume.restart_warning(restart)
    assert warning and "\n" not in warning
    assert f"--finetune-from-model {model}" in warning and str(save / "checkpoint_last.pt") in warning
    assert "--reset-optimizer --reset-meters --reset-dataloader" in warning

    # resuming, or restoring without a reset, or restoring the last checkpoint itself: no warning
    assert resume.restart_warning(checkpoint_cfg(save)) is None
    assert resume.restart_warning(checkpoint_cfg(save, restore_file=str(model))) is None
    assert resume.restart_warning(checkpoint_cfg(
        save, restore_file=str(save / "checkpoint_last.pt"), reset_optimizer=True)) is None
    assert resume.restart_warning(checkpoint_cfg(save, finetune_from_model=str(model))) is None

    # through fairseq's checkpoint_utils.load_checkpoint, as fairseq-train calls it
    from fairseq import checkpoint_utils

    assert getattr(checkpoint_utils.load_checkpoint, "addrop_wrapped", False)
    calls = []
    checked = resume.with_restart_checks(lambda cfg, trainer, **kw: calls.append(cfg) or "loaded")
    trainer = SimpleNamespace(checkpoint_suffix="")
    with caplog.at_level(logging.WARNING, logger="addrop_fairseq.tasks.resume"):
        assert checked(restart, trainer) == "loaded"
    assert calls == [restart]
    assert [r.getMessage() for r in caplog.records] == [warning]


def test_finetune_from_model_mixed_with_restore_file_or_resets_is_refused_in_one_line(tmp_path):
    from fairseq import checkpoint_utils

    mixed = checkpoint_cfg(tmp_path, finetune_from_model="m.pt", reset_optimizer=True,
                           restore_file="other.pt")
    with pytest.raises(AddropError) as error:
        checkpoint_utils.load_checkpoint(mixed, SimpleNamespace(checkpoint_suffix=""))
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    assert "--finetune-from-model m.pt" in message and "--restore-file other.pt" in message
    assert "--reset-optimizer" in message and "to continue from other.pt, drop --finetune-from-model" in message
    only_resets = checkpoint_cfg(tmp_path, finetune_from_model="m.pt", reset_meters=True)
    assert "drop the --reset-* options" in resume.mixed_options_error(only_resets)
    assert resume.mixed_options_error(checkpoint_cfg(tmp_path, finetune_from_model="m.pt")) is None


def test_the_runner_fingerprints_both_ways_of_starting_from_a_model_alike():
    old = ["--lr", "1e-4", "--restore-file", "m.pt", "--reset-optimizer", "--reset-dataloader",
           "--reset-meters", "--seed", "1"]
    assert same_start(["--lr", "1e-4", "--finetune-from-model", "m.pt", "--seed", "1"]) == old
    assert same_start(["--lr", "1e-4", "--finetune-from-model=m.pt", "--seed", "1"]) == old
    assert same_start(old) == old


def test_the_runner_tells_a_continued_run_from_one_that_started_over():
    before = ('2026 | INFO | train_inner | {"epoch": 1, "update": 0.5, "num_updates": "5"}\n'
              '2026 | INFO | train | {"epoch": 1, "train_num_updates": "10"}\n')
    resumed = ("Loaded checkpoint ck/checkpoint_last.pt (epoch 2 @ 10 updates)\n"
               '2026 | INFO | train_inner | {"epoch": 2, "update": 1.1, "num_updates": "11"}\n')
    restarted = ("Loaded checkpoint minilm/model.pt (epoch 1 @ 0 updates)\n"
                 '2026 | INFO | train_inner | {"epoch": 1, "update": 0.1, "num_updates": "1"}\n')
    good = continuation(before, resumed, 10)
    assert good["continued"] and good["loaded"] == "checkpoint_last.pt"
    assert (good["last_logged_update_before"], good["first_logged_update_after"]) == (10, 11)
    bad = continuation(before, restarted, 10)
    assert not bad["continued"] and (bad["loaded"], bad["loaded_updates"]) == ("model.pt", 0)


# ---------------------------------------------------------------- end to end: tiny runs, SIGKILL

def fairseq_train(*args) -> list:
    return [sys.executable, "-m", "fairseq_cli.train", *map(str, args)]


def environment() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def run(command) -> str:
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def run_killed(command, after) -> tuple:
    """Starts ``command`` and SIGKILLs it once it has logged a saved checkpoint for which
    ``after(epoch, updates, file)`` holds; (epoch, updates) of that checkpoint."""
    process = subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            saved = SAVED.search(line)
            if saved and after(int(saved.group(1)), int(saved.group(2)), line):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        if process.poll() is None and not saved:
            process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen[-40:])
    return int(saved.group(1)), int(saved.group(2))


def assert_resumed_to_the_same_end(whole_dir: Path, split_dir: Path, resumed_log: str,
                                   killed_at: int, what: str):
    loaded = [m for m in LOADED.finditer(resumed_log)]
    assert loaded and loaded[0].group(1).endswith("checkpoint_last.pt"), resumed_log[-3000:]
    assert int(loaded[0].group(3)) == killed_at
    assert "loading pretrained model" not in resumed_log
    end = {name: load_checkpoint(d / "checkpoint_last.pt") for name, d in
           (("whole", whole_dir), ("split", split_dir))}
    updates = end["whole"]["optimizer_history"][-1]["num_updates"]
    assert end["split"]["optimizer_history"][-1]["num_updates"] == updates > killed_at
    difference = max_parameter_difference(end["whole"]["model"], end["split"]["model"])
    print(f"\n{what}: killed after the checkpoint at update {killed_at} of {updates}, resumed: "
          f"max |resumed - uninterrupted| {difference:.3g} (tolerance {TOLERANCE})")
    assert difference <= TOLERANCE
    return end


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny BERT converted to fairseq (addrop-convert-hf-encoder's library call) and a
    CoNLL-shaped corpus tokenized with its tokenizer (addrop-prepare-conll2003)."""
    pytest.importorskip("transformers")
    from addrop_fairseq.convert.hf_encoder import convert_hf_encoder
    from test_convert_hf_encoder import write_encoder_dir
    from test_ner_fixtures import load_script, write_corpus

    root = tmp_path_factory.mktemp("converted")
    write_encoder_dir("bert", root / "hf", root)
    conversion = convert_hf_encoder(root / "hf", root / "converted")
    data = root / "ner"
    load_script("prepare_conll2003").main([
        "--conll-dir", str(write_corpus(root / "conll", train=48, valid=16, test=16)),
        "--dest", str(data), "--tokenizer", "huggingface", "--hf-tokenizer",
        str(conversion.tokenizer), "--dict", str(conversion.dictionary)])
    model = list(map(str, conversion.model_arguments))
    model[model.index("--arch") + 1] = "addrop_roberta_tagger"
    return SimpleNamespace(checkpoint=conversion.checkpoint, data=data, model=model,
                           conversion=conversion)


def ner_command(converted, save_dir, *extra) -> list:
    """examples/ner/README.md section 5's command, for the tiny model and corpus
    (48 sentences in batches of 8: 6 updates an epoch)."""
    return fairseq_train(
        converted.data, "--user-dir", PLUGIN, "--task", "addrop_tagging",
        "--criterion", "addrop_tagging", *converted.model,
        "--finetune-from-model", converted.checkpoint,
        "--addrop-p", "0.3", "--addrop-q", "0.3", "--addrop-schedule", "cross",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.999)", "--clip-norm", "1.0",
        "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--total-num-update", "24",
        "--warmup-updates", "0", "--batch-size", "8", "--batch-order", "random",
        "--max-epoch", "4", "--num-workers", "0", "--seed", "3",
        "--best-checkpoint-metric", "f1", "--maximize-best-checkpoint-metric",
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--cpu",
        "--log-format", "json", "--log-interval", "1", *extra)


SPEC = """\
data: {data}
train: >-
  --user-dir {plugin} --task addrop_tagging --criterion addrop_tagging --cpu {model}
  --finetune-from-model {checkpoint}
  --optimizer adam --clip-norm 1.0 --lr 1e-3 --lr-scheduler polynomial_decay
  --total-num-update 30 --batch-size 8 --max-epoch 5 --num-workers 0 --log-interval 1
arms:
  ga: --addrop-schedule cross --addrop-p 0.3 --addrop-q 0.3
seeds: [2]
select: {{metric: f1, maximize: true}}
test: {{kind: ner, split: test}}
valid_on_train: true
"""


def compare(spec, out, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "addrop_fairseq.cli.compare", str(spec), "--out", str(out),
         "--keep-checkpoints", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env=environment())

"""The README's first command: scripts/quickstart.sh (addrop-quickstart) end to end (2 epochs
instead of 12), what it prints on the terminal, the logs it keeps, and what it shows when a stage
fails."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def quickstart(work, *args):
    # scripts/quickstart.sh runs the addrop-quickstart of $VENV (default: the checkout's .venv):
    # the environment running these tests
    env = dict(os.environ, OMP_NUM_THREADS="1", VENV=sys.prefix,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(["bash", "scripts/quickstart.sh", str(work), *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def test_quickstart_prints_one_line_a_stage_and_an_epoch_then_bleu(tmp_path):
    work = tmp_path / "qs"
    result = quickstart(work, "2")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    lines = output.splitlines()
    # 12 epochs (the README's run) add 10 lines to these: still under 40
    assert len(lines) <= 40 - 10, output
    assert "Warning" not in output and "hydra" not in output.lower().replace("/hydra", "")

    epochs = re.findall(r"^  epoch +(\d+)/2  (plain|AD-DROP) +train loss +([\d.]+) +dev loss "
                        r"+([\d.]+) +(?:drop ([\d.]+))?", output, re.M)
    assert [(e, phase) for e, phase, *_ in epochs] == [("1", "plain"), ("2", "AD-DROP")], output
    assert 0 < float(epochs[1][4]) < 0.3  # the realised drop rate, about p * q = 0.09
    for stage in ("prepare", "train", "translate"):
        assert re.search(rf"^{stage} ", output, re.M), stage
    assert "4,056 / 300 / 300 sentence pairs" in output

    # it ends with the BLEU of every test sentence and sacrebleu's signature
    assert re.fullmatch(r"BLEU = [\d.]+ .*\(300 sentences\)", lines[-2]), lines[-2]
    assert lines[-1].startswith("signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")

    # the whole of what the tools printed is kept
    train_log = (work / "train.log").read_text()
    assert "AddropTransformerModel(" in train_log and "epoch 002: AD-DROP on" in train_log
    assert "train: 4056 pairs" in (work / "prepare.log").read_text()
    assert "Translated 300 sentences" in (work / "translate.log").read_text()
    translations = (work / "generate.test.txt").read_text()
    assert "Generate test with beam=4: BLEU" in translations
    assert len(re.findall(r"^D-\d+\t", translations, re.M)) == 300
    assert (work / "checkpoints" / "checkpoint_best.pt").is_file()

    # run again, as a user would: the data is reused, training is found finished, same BLEU
    again = quickstart(work, "2")
    second = again.stdout + again.stderr
    assert again.returncode == 0, second[-4000:]
    assert f"prepare    reusing {work / 'data'}" in second and "sentence pairs" not in second
    assert re.search(r"Loaded checkpoint \S*checkpoint_last\.pt", (work / "train.log").read_text())
    assert not re.search(r"^  epoch ", second, re.M), "nothing was trained again"
    assert second.splitlines()[-2] == lines[-2]


def test_a_failing_stage_shows_its_log_path_and_last_lines(tmp_path):
    work = tmp_path / "qs"
    result = quickstart(work, "2", "criterion.addrop_p=1.5")  # p must lie in (0, 1]
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    log = work / "train.log"
    assert f"train failed (exit status 1); the last lines of {log}:" in result.stderr
    assert re.search(r"^  .*addrop_p|^  .*\bp=1\.5|^  .*--addrop-p", result.stderr, re.M), output
    assert len(output.splitlines()) <= 30
    assert result.stderr.splitlines()[-1] == f"(the whole log: {log})"
    assert "BLEU" not in output

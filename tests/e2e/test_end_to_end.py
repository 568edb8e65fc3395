"""fairseq-preprocess/train/generate through the real command line on a slice of the bundled corpus."""
import re

import pytest
import torch

from conftest import REPO, run_cli
from pathlib import Path

from addrop_fairseq.data.samples import QUICKSTART_CORPUS

pytestmark = pytest.mark.slow

MODEL = ["--arch", "addrop_transformer", "--share-all-embeddings", "--encoder-layers", "2",
         "--decoder-layers", "2", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
         "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
         "--encoder-attention-heads", "4", "--decoder-attention-heads", "4"]


def write_slice(directory, split, start, count):
    for lang in ("en", "ro"):
        lines = (Path(QUICKSTART_CORPUS + f".{lang}")).read_text(encoding="utf-8").splitlines()
        (directory / f"{split}.{lang}").write_text("\n".join(lines[start:start + count]) + "\n",
                                                   encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, plugin_dir):
    work = tmp_path_factory.mktemp("e2e")
    raw = work / "raw"
    raw.mkdir()
    write_slice(raw, "train", 0, 600)
    write_slice(raw, "valid", 600, 60)
    write_slice(raw, "test", 660, 60)
    run_cli("addrop_fairseq.cli.prepare_translation", "-s", "en", "-t", "ro", "--train", raw / "train",
            "--valid", raw / "valid", "--test", raw / "test", "--vocab-size", "800",
            "--dest", work / "data", "--workers", "1", cwd=REPO)
    train = run_cli(
        "fairseq_cli.train", work / "data" / "bin", "--user-dir", plugin_dir, "--cpu",
        "--task", "addrop_translation", *MODEL,
        "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--addrop-p", "0.3", "--addrop-q", "0.3",
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "2000", "--max-epoch", "4",
        "--save-dir", work / "checkpoints", "--no-epoch-checkpoints", "--log-format", "simple",
        "--log-interval", "1000", "--seed", "1", "--num-workers", "0")
    return work, train.stdout + train.stderr


def epoch_lines(log, subset):
    return {int(m.group(1)): m.group(0) for m in
            re.finditer(rf"\| {subset} \| epoch (\d+) \|.*", log)}


def test_training_alternates_plain_and_addrop_epochs(trained):
    _, log = trained
    train = epoch_lines(log, "train")
    assert sorted(train) == [1, 2, 3, 4]
    for epoch, line in train.items():
        active = re.search(r"\| addrop ([\d.]+) ", line).group(1)
        assert float(active) == (1.0 if epoch % 2 == 0 else 0.0), line
        drop = re.search(r"\| addrop_drop ([\d.]+) ", line)
        if epoch % 2 == 0:
            # about p * q = 0.09 of the valid attention positions, a little more through ceil
            assert 0.05 < float(drop.group(1)) < 0.2, line
        else:
            assert float(drop.group(1)) == 0.0, line
    assert "epoch 002: AD-DROP on" in log and "epoch 001: AD-DROP off" in log
    # validation never masks: its log lines carry no AD-DROP statistics
    for line in epoch_lines(log, "valid").values():
        assert "addrop" not in line


def test_generate_scores_bleu_with_sacrebleu(trained, plugin_dir):
    work, _ = trained
    generate = run_cli("fairseq_cli.generate", work / "data" / "bin", "--user-dir", plugin_dir,
                       "--cpu", "--gen-subset", "test", "--path",
                       work / "checkpoints" / "checkpoint_best.pt", "--beam", "4",
                       "--batch-size", "32", "--required-batch-size-multiple", "1", "--post-process", "sentencepiece",
                       "--scoring", "sacrebleu")
    assert re.search(r"Generate test with beam=4: BLEU = [\d.]+", generate.stdout)
    hypotheses = [line for line in generate.stdout.splitlines() if line.startswith("D-")]
    assert len(hypotheses) == 60
    output = work / "generate.txt"
    output.write_text(generate.stdout, encoding="utf-8")
    score = run_cli("addrop_fairseq.cli.score_bleu", "--generate-output", output, cwd=REPO)
    assert re.search(r"^BLEU = [\d.]+", score.stdout, re.M)
    assert "signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in score.stdout


def test_checkpoint_keeps_transformer_keys(trained):
    import addrop_fairseq  # noqa: F401  (allow-lists what fairseq checkpoints pickle)

    work, _ = trained
    state = torch.load(work / "checkpoints" / "checkpoint_last.pt")  # weights_only default
    assert state["cfg"]["model"].arch == "addrop_transformer"
    assert "encoder.layers.0.self_attn.q_proj.weight" in state["model"]
    # 4 epochs done: a resumed run starts the 5th, an odd one, so plain again
    assert state["extra_state"]["train_iterator"]["epoch"] == 5


def test_attribution_sign_check_script_reports_both_strategies(trained):
    work, _ = trained
    result = run_cli("addrop_fairseq.cli.sign_check", work / "data" / "bin", "--updates", "6",
                     cwd=REPO, check=False)
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    losses = dict(re.findall(r"--addrop-strategy (low|high) ?: training loss after 6 updates: "
                             r"([\d.]+) \(with masks\)", result.stdout))
    assert set(losses) == {"low", "high"} and all(float(v) > 0 for v in losses.values())
    verdict = re.search(r"fits faster than dropping high ones: (yes|NO) \(target gold", result.stdout)
    assert verdict and (verdict.group(1) == "yes") == (result.returncode == 0)

"""Determinism and resume, end to end through fairseq-train on tiny data.

AD-DROP draws its masks from a generator seeded by (--seed, update, rank, micro-batch), and the
cross-tuning phase is a function of (epoch, update): so a run interrupted at an epoch boundary
and resumed from checkpoint_last.pt must end where the uninterrupted run ends.
"""
import random
import re
from pathlib import Path

import pytest
import torch

import addrop_fairseq  # noqa: F401  (registers the components and the checkpoint allow-list)
from addrop_fairseq.tasks.cross_tuning import step_generator
from conftest import PLUGIN, run_cli

TOLERANCE = 1e-6

TINY_TRANSFORMER = [
    "--arch", "addrop_transformer", "--encoder-layers", "2", "--decoder-layers", "2",
    "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def tiny_translation_data(directory: Path, pairs: int = 200, valid: int = 20, seed: int = 0) -> Path:
    """A learnable toy pair (reverse the words, rename them), binarized by fairseq-preprocess.

    Returns the binary data directory (splits train and valid, languages src and tgt).
    """
    from fairseq import options
    from fairseq_cli import preprocess

    rng = random.Random(seed)
    words = [f"w{i}" for i in range(24)]
    raw = Path(directory) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", pairs), ("valid", valid)):
        sources = [[rng.choice(words) for _ in range(rng.randint(3, 9))] for _ in range(count)]
        (raw / f"{split}.src").write_text("".join(" ".join(s) + "\n" for s in sources))
        (raw / f"{split}.tgt").write_text(
            "".join(" ".join("v" + w[1:] for w in reversed(s)) + "\n" for s in sources))
    binary = Path(directory) / "bin"
    preprocess.main(options.get_preprocessing_parser().parse_args([
        "--source-lang", "src", "--target-lang", "tgt", "--trainpref", str(raw / "train"),
        "--validpref", str(raw / "valid"), "--destdir", str(binary), "--joined-dictionary",
        "--workers", "1"]))
    return binary


def train_args(data: Path, save_dir: Path, *extra: str) -> list:
    """fairseq-train arguments for the tiny model with AD-DROP (cross-tuning by default)."""
    return [
        str(data), "--user-dir", PLUGIN, "--task", "addrop_translation", *TINY_TRANSFORMER,
        "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "400", "--cpu",
        "--save-dir", str(save_dir), "--log-format", "simple",
        "--log-interval", "1", "--no-progress-bar", "--num-workers", "0", *extra,
    ]


def load_checkpoint(path: Path) -> dict:
    # torch's default weights_only=True loader: the plugin's allow-list is what makes this work
    return torch.load(path, map_location="cpu")


def max_parameter_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def epoch_summaries(log: str) -> dict:
    """epoch -> (AD-DROP phase announced by the task, the epoch's train statistics).

    A meter with no value this epoch prints as None, depending on whether an earlier epoch of
    the same process created it; those are left out.
    """
    phases = dict(re.findall(r"epoch (\d+): AD-DROP (on|off)", log))
    lines = dict(re.findall(r"\| train \| epoch (\d+) \| (.*?) \| wps", log))
    return {int(epoch): (phases.get(epoch), {key: value for key, value in
                                             (field.split(" ") for field in line.split(" | "))
                                             if value != "None"})
            for epoch, line in lines.items()}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_translation_data(tmp_path_factory.mktemp("resume"))


def test_addrop_draws_depend_on_seed_update_rank_and_micro_batch():
    def draw(*key):
        return torch.rand(64, generator=step_generator(*key, device=torch.device("cpu")))

    base = (1, 10, 0, 0)
    assert torch.equal(draw(*base), draw(*base))
    for changed in range(4):
        key = list(base)
        key[changed] += 1
        assert not torch.equal(draw(*base), draw(*key)), f"position {changed} of the key is ignored"

"""Sanity check of the attribution's sign (paper section 2.2, Fig. 2): the same tiny
translation model trained from the same seed with AD-DROP in every epoch, dropping among the
lowest- and among the highest-attributed keys; dropping high-attribution positions should slow
fitting, so ``low`` should end with the lower training loss."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Tuple

from .. import PLUGIN_DIR
from ..errors import AddropError

STRATEGIES = ("low", "high")
Losses = Tuple[float, float]  # (logged while training, with the masks; on the train set, without)


def training_losses(data, strategy: str, updates: int, p: float, q: float, seed: int,
                    target: str, save_dir) -> Losses:
    """Trains the tiny model for ``updates`` updates with ``--addrop-strategy STRATEGY``."""
    command = [
        sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", PLUGIN_DIR, "--cpu",
        "--task", "addrop_translation", "--addrop-schedule", "always",
        "--arch", "addrop_transformer", "--share-all-embeddings",
        "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "64",
        "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
        "--decoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4",
        "--decoder-attention-heads", "4", "--dropout", "0.0",
        "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.0",
        "--addrop-p", str(p), "--addrop-q", str(q), "--addrop-strategy", strategy,
        "--addrop-target", target,
        "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "50", "--max-tokens", "4000", "--max-update", str(updates),
        "--valid-subset", "train", "--validate-interval-updates", str(updates),
        "--seed", str(seed),
        "--save-dir", str(save_dir), "--no-save", "--log-format", "simple",
        "--log-interval", "1000",
    ]
    out = subprocess.run(command, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    if out.returncode != 0:
        raise AddropError(f"training with --addrop-strategy {strategy} exited {out.returncode}:\n"
                          + out.stdout[-3000:] + out.stderr[-3000:])
    log = out.stdout + out.stderr
    masked = re.findall(r"\| train \| epoch \d+ \| loss ([\d.]+)", log)[-1]
    # fairseq tags a validation line with the subset's name, here "train"
    clean = re.findall(r"\| epoch \d+ \| valid on 'train' subset \| loss ([\d.]+)", log)[-1]
    return float(masked), float(clean)


def sign_check(data, updates: int = 300, p: float = 0.3, q: float = 0.5, seed: int = 1,
               target: str = "gold") -> Iterator[Tuple[str, Losses]]:
    """``addrop-sign-check``: (strategy, losses) for ``low`` then ``high``, each as it ends."""
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in STRATEGIES:
            yield strategy, training_losses(data, strategy, updates, p, q, seed, target,
                                            Path(tmp) / strategy)


def low_fits_faster(results: Dict[str, Losses]) -> bool:
    """Whether ``low`` ends lower than ``high`` on both losses (the sign is right)."""
    return all(low < high for low, high in zip(results["low"], results["high"]))

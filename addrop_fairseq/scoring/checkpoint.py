"""One way to load a checkpoint for evaluation, shared by ``addrop-evaluate-glue``,
``addrop-evaluate-ner`` and the analyses.

Loading is ``fairseq.checkpoint_utils.load_model_ensemble_and_task``, as ``fairseq-generate``
loads a checkpoint: the model (in eval mode, on its device), its config and its task, reading
the data directory given here instead of the one it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..errors import AddropError


@dataclass
class Checkpoint:
    model: torch.nn.Module
    cfg: object
    task: object
    device: torch.device


def load_checkpoint(path, data, splits=(), cpu: bool = False) -> Checkpoint:
    """The checkpoint at ``path`` with its task reading ``data``; ``splits`` are loaded. The model
    runs on CUDA where there is one, unless ``cpu``."""
    from fairseq import checkpoint_utils

    check_inputs(path, data)
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(path)], arg_overrides={"data": str(data)})
    device = torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")
    checkpoint = Checkpoint(models[0].to(device).eval(), cfg, task, device)
    for split in splits:
        load_split(checkpoint, split)
    return checkpoint


def check_inputs(path, data) -> None:
    """The cheap checks of ``load_checkpoint``, for a command to make before other reading."""
    if not Path(path).is_file():
        raise AddropError(f"--path {path}: no such checkpoint")
    if not Path(data).is_dir():
        raise AddropError(f"--data {data}: no such directory")


def load_split(checkpoint: Checkpoint, split: str) -> None:
    try:
        checkpoint.task.load_dataset(split)
    except (FileNotFoundError, AssertionError) as error:
        raise AddropError(f"--data {checkpoint.cfg.task.data}: cannot load split {split!r} "
                          f"({error})") from None


def batches(checkpoint: Checkpoint, split: str, max_tokens: Optional[int] = None,
            batch_size: Optional[int] = None, seed: int = 1):
    """The loaded split's batches in file order, as fairseq's validation makes them (no
    shuffling; 32 examples a batch unless a size is given), on the model's device."""
    from fairseq import utils

    task, model = checkpoint.task, checkpoint.model
    if max_tokens is None and batch_size is None:
        batch_size = 32
    iterator = task.get_batch_iterator(
        dataset=task.dataset(split), max_tokens=max_tokens, max_sentences=batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=False, seed=seed, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    for sample in iterator:
        yield to_device(sample, checkpoint.device)


def to_device(sample, device: torch.device):
    from fairseq import utils

    return utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample

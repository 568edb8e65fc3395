"""Let torch >= 2.6's ``weights_only`` loader read fairseq checkpoints, and nothing more.

fairseq 0.12 calls ``torch.load`` without ``weights_only``, which torch now defaults to True,
and its checkpoints pickle a few non-tensor classes (the argparse/omegaconf config, logging
meters). Those classes, and only those, are allow-listed; any other global in a pickle is
still refused. What remains trusted: the listed classes are rebuilt from the file's data
(attribute dictionaries, no code runs), so a hostile checkpoint can still carry misleading
configuration values, but cannot execute code on load.

Distributed training: unless --load-checkpoint-on-all-dp-ranks, rank 0 reads the checkpoint and
broadcasts it (fairseq.distributed.utils.broadcast_object). The broadcast pickles the state with
every tensor replaced by a ``_TensorPlaceholder(index)`` and the other ranks unpickle it with the
same default loader, so that one class is allowed too: a frozen dataclass holding an int, made
by fairseq itself and never read from a file on disk.

A checkpoint that cannot be read at all (empty, truncated by a crash or a full disk) gives one
line naming it and the readable checkpoints beside it, instead of torch's bare EOFError.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import typing
import zipfile
from pathlib import Path

import torch

from .errors import AddropError


def _fairseq_checkpoint_globals():
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode
    from fairseq.distributed.utils import _TensorPlaceholder
    from fairseq.logging import meters

    return [
        _TensorPlaceholder,
        argparse.Namespace, collections.OrderedDict, collections.defaultdict, typing.Any,
        dict, list, int, float, str, bool,
        DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
        meters.AverageMeter, meters.TimeMeter, meters.StopwatchMeter, meters.SumMeter,
        meters.MetersDict,
    ]


def allow_fairseq_checkpoints() -> None:
    torch.serialization.add_safe_globals(_fairseq_checkpoint_globals())


def unreadable(path) -> typing.Optional[str]:
    """Why ``path`` cannot be a checkpoint at all (None when its container is intact).

    torch.save writes a zip archive whose directory sits at the very end, so a file cut short
    anywhere loses it; checking it reads a few bytes, not the tensors.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if size == 0:
        return "is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return f"is truncated or corrupt ({size} bytes, not a complete torch archive)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        return f"is truncated or corrupt ({size} bytes: {error})"
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return f"is not a torch checkpoint ({size} bytes, no data.pkl in the archive)"
    return None


def loadable_checkpoints(directory, excluding) -> typing.List[typing.Tuple[str, int]]:
    """(name, updates) of the checkpoint files in ``directory`` that load, furthest trained
    first (updates -1 where the file records none)."""
    found = []
    for candidate in Path(directory).glob("*.pt"):
        if candidate.resolve() == Path(excluding).resolve() or unreadable(candidate):
            continue
        try:  # mmap: the tensors are mapped, not read, so a large checkpoint costs little
            state = torch.load(candidate, map_location="cpu", mmap=True)
        except Exception:
            continue
        try:
            updates = int(state["optimizer_history"][-1]["num_updates"])
        except (KeyError, IndexError, TypeError, ValueError):
            updates = -1
        found.append((candidate.name, updates))
    return sorted(found, key=lambda item: (-item[1], item[0]))


def _option_for_a_checkpoint() -> str:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if "train" in program:
        return "--restore-file"
    return "--path"


def corrupt_checkpoint_error(path, reason: str) -> AddropError:
    directory = Path(path).parent
    others = loadable_checkpoints(directory, path)
    option = _option_for_a_checkpoint()
    if others:
        names = ", ".join(name + (f" ({updates} update{'' if updates == 1 else 's'})"
                                  if updates >= 0 else "")
                          for name, updates in others)
        listing = (f"loadable checkpoints in {directory}: {names}; use one with "
                   f"{option} {directory / others[0][0]}")
    else:
        listing = f"no loadable checkpoint in {directory}"
    if option == "--restore-file":
        listing += " (or delete the bad file)"
    return AddropError(f"checkpoint {path} {reason}; {listing}")


def with_corrupt_checkpoint_errors(load):
    """Wraps fairseq's ``load_checkpoint_to_cpu``: a file that is not a checkpoint container
    becomes one line; every other failure (a refused global, a missing key) is fairseq's."""
    @functools.wraps(load)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        try:
            return load(path, *args, **kwargs)
        except Exception:
            reason = unreadable(path) if os.path.isfile(path) else None
            if reason is None:
                raise
            raise corrupt_checkpoint_error(path, reason) from None

    load_checkpoint_to_cpu.addrop_wrapped = True
    return load_checkpoint_to_cpu


def name_corrupt_checkpoints() -> None:
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.load_checkpoint_to_cpu, "addrop_wrapped", False):
        checkpoint_utils.load_checkpoint_to_cpu = with_corrupt_checkpoint_errors(
            checkpoint_utils.load_checkpoint_to_cpu)

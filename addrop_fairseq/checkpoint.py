"""Let torch >= 2.6's ``weights_only`` loader read fairseq checkpoints, and nothing more.

fairseq 0.12 calls ``torch.load`` without ``weights_only``, which torch now defaults to True,
and its checkpoints pickle a few non-tensor classes (the argparse/omegaconf config, logging
meters). Those classes, and only those, are allow-listed; any other global in a pickle is
still refused. What remains trusted: the listed classes are rebuilt from the file's data
(attribute dictionaries, no code runs), so a hostile checkpoint can still carry misleading
configuration values, but cannot execute code on load.
"""
from __future__ import annotations

import argparse
import collections
import typing

import torch


def _fairseq_checkpoint_globals():
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode
    from fairseq.logging import meters

    return [
        argparse.Namespace, collections.OrderedDict, collections.defaultdict, typing.Any,
        dict, list, int, float, str, bool,
        DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
        meters.AverageMeter, meters.TimeMeter, meters.StopwatchMeter, meters.SumMeter,
        meters.MetersDict,
    ]


def allow_fairseq_checkpoints() -> None:
    torch.serialization.add_safe_globals(_fairseq_checkpoint_globals())

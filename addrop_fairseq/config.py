"""The --addrop-* options: criterion options (what to drop) and task options (when).

Two names, one per layer: ``AddropConfig`` is the criterion options as fairseq declares and parses
them (fairseq names every such dataclass ``*Config``, and each AD-DROP criterion's config mixes
it in); ``core.step.AddropSettings`` is the same options validated and stripped of fairseq, what
the two-pass step reads (``core/`` imports no fairseq). ``settings_from_config`` is the one way
from the first to the second.
"""
# no "from __future__ import annotations": fairseq reads these dataclass field types at run time

from dataclasses import dataclass, field
from typing import List

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II

from .errors import AddropError
from .modules.attention import KINDS, AddropMultiheadAttention
from .core.attribution import METHODS
from .core.mask import STRATEGIES, validate_rate
from .core.schedule import SCHEDULES
from .core.step import AddropSettings


@dataclass
class AddropConfig(FairseqDataclass):
    addrop_p: float = field(default=0.3, metadata={
        "help": "p: the candidate region is the top ceil(p * n) attributed keys of each query row"})
    addrop_q: float = field(default=0.3, metadata={
        "help": "q: probability that each candidate position is dropped"})
    addrop_layers: str = field(default="all", metadata={
        "help": "layers to mask: 'all' or comma-separated 0-based indices, e.g. '0' or '0,1,5'"})
    addrop_modules: str = field(default="encoder_self,decoder_self", metadata={
        "help": f"comma-separated attention kinds to mask, from {', '.join(KINDS)}"})
    addrop_attribution: ChoiceEnum(METHODS) = field(default="ga", metadata={
        "help": "ga: gradient (default); iga: integrated gradients; aa: attention weights; "
                "rd: random candidate region"})
    addrop_iga_steps: int = field(default=20, metadata={
        "help": "m, the number of integration steps for --addrop-attribution iga"})
    addrop_target: ChoiceEnum(["pseudo", "gold"]) = field(default="pseudo", metadata={
        "help": "attribute the first pass's argmax predictions (the method) or the gold labels"})
    addrop_strategy: ChoiceEnum(STRATEGIES) = field(default="high", metadata={
        "help": "high: drop among the highest-attributed keys (the method); low: among the "
                "lowest (paper section 2.2 control); random: any valid key at rate q"})


@dataclass
class AddropScheduleConfig(FairseqDataclass):
    addrop_schedule: ChoiceEnum(SCHEDULES) = field(default="cross", metadata={
        "help": "cross: odd epochs plain, even epochs AD-DROP (cross-tuning); always; off; "
                "updates: alternate every --addrop-alternate-updates updates"})
    addrop_alternate_updates: int = field(default=1000, metadata={
        "help": "block length in updates for --addrop-schedule updates"})
    seed: int = II("common.seed")


def validate_schedule(cfg) -> None:
    if cfg.addrop_schedule not in SCHEDULES:
        raise AddropError(f"--addrop-schedule={cfg.addrop_schedule!r}: expected one of {SCHEDULES}")
    if cfg.addrop_alternate_updates < 1:
        raise AddropError(f"--addrop-alternate-updates={cfg.addrop_alternate_updates} must be >= 1")


def settings_from_config(cfg) -> AddropSettings:
    """The step's settings from the criterion options; validates them (all of them, kinds and
    layers included) once, at start-up, with one-line errors."""
    for name, allowed in (("attribution", METHODS), ("strategy", STRATEGIES),
                          ("target", ("pseudo", "gold"))):
        value = str(getattr(cfg, f"addrop_{name}"))
        if value not in allowed:
            raise AddropError(f"--addrop-{name}={value!r}: expected one of {allowed}")
    if cfg.addrop_iga_steps < 1:
        raise AddropError(f"--addrop-iga-steps={cfg.addrop_iga_steps} must be >= 1")
    parse_kinds(cfg.addrop_modules)
    parse_layers(cfg.addrop_layers)
    return AddropSettings(
        p=validate_rate("p", cfg.addrop_p), q=validate_rate("q", cfg.addrop_q),
        attribution=str(cfg.addrop_attribution), iga_steps=cfg.addrop_iga_steps,
        strategy=str(cfg.addrop_strategy),
    )


def parse_kinds(spec: str) -> List[str]:
    kinds = [k.strip() for k in str(spec).split(",") if k.strip()]
    if not kinds:
        raise AddropError(f"--addrop-modules={spec!r} names no attention; allowed: {', '.join(KINDS)}")
    for kind in kinds:
        if kind not in KINDS:
            raise AddropError(f"--addrop-modules: unknown attention {kind!r}; allowed: {', '.join(KINDS)}")
    return kinds


def parse_layers(spec: str):
    """None means all layers."""
    if str(spec).strip() == "all":
        return None
    try:
        layers = sorted({int(x) for x in str(spec).split(",") if x.strip()})
    except ValueError:
        raise AddropError(f"--addrop-layers={spec!r}: expected 'all' or comma-separated indices") from None
    if not layers:
        raise AddropError(f"--addrop-layers={spec!r}: no layer index given (expected 'all' or "
                          "comma-separated indices such as 0,1)")
    if layers[0] < 0:
        raise AddropError(f"--addrop-layers={spec!r}: indices must be >= 0")
    return layers


def select_modules(modules: List[AddropMultiheadAttention], kinds_spec: str, layers_spec: str
                   ) -> List[AddropMultiheadAttention]:
    """The attention modules AD-DROP masks; a layer index no selected stack has is an error."""
    kinds, layers = parse_kinds(kinds_spec), parse_layers(layers_spec)
    if not modules:
        raise AddropError("the AD-DROP criteria need a model whose attention can be masked: "
                          "use an addrop_* architecture (e.g. --arch addrop_transformer); "
                          "this model has no AD-DROP attention")
    for kind in kinds:
        depth = sum(1 for m in modules if m.kind == kind)
        if depth == 0:
            present = sorted({m.kind for m in modules})
            raise AddropError(f"--addrop-modules: this model has no {kind!r} attention "
                             f"(it has: {', '.join(present) or 'none'})")
        if layers is not None and layers[-1] >= depth:
            raise AddropError(f"--addrop-layers: layer {layers[-1]} is out of range for "
                             f"{kind} ({depth} layers: 0..{depth - 1})")
    return [m for m in modules
            if m.kind in kinds and (layers is None or m.layer in layers)]

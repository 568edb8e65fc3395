"""A comparison spec: base fairseq-train options, named arms, an optional p x q grid, seeds.

A spec is a YAML (or JSON) mapping::

    data: data-bin/conll2003-minilm-200      # fairseq-train's positional DATA
    train: >-                                # options every arm shares
      --user-dir addrop_fairseq --task addrop_tagging ...
    arms:                                    # name -> the options that make the arm
      plain: --addrop-schedule off
      ga: --addrop-schedule cross --addrop-p 0.3 --addrop-q 0.3
    grid:                                    # optional: one arm per combination
      options: --addrop-schedule cross       # shared by the grid's arms
      p: [0.1, 0.5, 0.9]                     # each key becomes --addrop-KEY VALUE
      q: [0.1, 0.5, 0.9]
    baseline: plain                          # the arm the others are compared with
    seeds: [1, 2, 3]
    select: {metric: f1, maximize: true}     # dev metric that picks the checkpoint
    test: {kind: ner, split: test}           # ner | translation | glue (see evaluate.py)
    report_split: test                       # optional: a split validated every epoch beside
                                             # valid; the test score is read from the log at
                                             # the epoch chosen on dev (test.kind none)

Relative paths (``data``, ``--user-dir``) are read from the directory the comparison runs in.
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AddropError

TEST_KINDS = ("ner", "translation", "glue", "none")


@dataclass(frozen=True)
class Arm:
    name: str
    options: tuple[str, ...]
    grid: dict = field(default_factory=dict, compare=False, hash=False)  # e.g. {"p": 0.3, "q": 0.1}


@dataclass
class Spec:
    data: str
    train: tuple[str, ...]
    arms: list[Arm]
    baseline: str
    seeds: list[int]
    select_metric: str = "loss"
    maximize: bool = False
    test: dict = field(default_factory=lambda: {"kind": "none"})
    valid_on_train: bool = (
        False  # also validate the training split each epoch (unmasked train loss)
    )
    # a split validated every epoch beside ``valid`` (the official GLUE dev split playing the
    # test set): both protocols of experiment/protocols.py read from the same runs
    report_split: str | None = None
    # the p x q grid as given (options as one string); its arms are in ``arms`` too, and
    # to_dict writes it back as a grid so a frozen spec.json still knows which arms are its cells
    grid: dict = field(default_factory=dict)

    def arm(self, name: str, where: str = "arm") -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise AddropError(
            f"{where}: {name!r} is not an arm of the spec ({', '.join(a.name for a in self.arms)})"
        )

    def to_dict(self) -> dict:
        return {
            "data": self.data,
            "train": shlex.join(self.train),
            "arms": {arm.name: shlex.join(arm.options) for arm in self.arms if not arm.grid},
            **({"grid": self.grid} if self.grid else {}),
            "baseline": self.baseline,
            "seeds": self.seeds,
            "select": {"metric": self.select_metric, "maximize": self.maximize},
            "test": self.test,
            "valid_on_train": self.valid_on_train,
            **({"report_split": self.report_split} if self.report_split else {}),
        }


def _options(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    if not isinstance(value, str):
        raise AddropError(f"{where}: expected a string of options, got {value!r}")
    try:
        return tuple(shlex.split(value))
    except ValueError as error:
        raise AddropError(f"{where}: cannot split {value!r} ({error})") from None


def _number_name(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand_grid(grid: dict, where: str = "grid") -> list[Arm]:
    """``{"options": ..., "p": [..], "q": [..]}``: one arm per combination, named ``p0.3-q0.1``."""
    if not isinstance(grid, dict):
        raise AddropError(
            f"{where}: expected a mapping like {{p: [0.1, 0.3], q: [0.1]}}, got {grid!r}"
        )
    shared = _options(grid.get("options"), f"{where}.options")
    axes = {key: value for key, value in grid.items() if key != "options"}
    if not axes:
        raise AddropError(f"{where}: no axis to expand (e.g. p: [0.1, 0.3])")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise AddropError(f"{where}.{key}: expected a non-empty list of values, got {values!r}")
    arms = []
    for combination in itertools.product(*axes.values()):
        point = dict(zip(axes, combination))
        name = "-".join(f"{key}{_number_name(value)}" for key, value in point.items())
        options = list(shared)
        for key, value in point.items():
            options += [f"--addrop-{key.replace('_', '-')}", str(value)]
        arms.append(Arm(name, tuple(options), point))
    return arms


def parse_grid_flag(text: str) -> dict:
    """``"p=0.1,0.3 q=0.1"`` (the CLI form) -> ``{"p": [0.1, 0.3], "q": [0.1]}``."""
    grid = {}
    for part in text.split():
        key, sep, values = part.partition("=")
        if not sep or not values:
            raise AddropError(f"--grid: {part!r} is not KEY=V1,V2,...")
        try:
            grid[key] = [float(v) if "." in v or "e" in v else int(v) for v in values.split(",")]
        except ValueError:
            raise AddropError(f"--grid: {part!r}: values must be numbers") from None
    return grid


def build_spec(raw: dict, where: str = "spec") -> Spec:
    """Validates a spec mapping; every error names the field and the bad value."""
    if not isinstance(raw, dict):
        raise AddropError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {
        "data",
        "train",
        "arms",
        "grid",
        "baseline",
        "seeds",
        "select",
        "test",
        "valid_on_train",
        "report_split",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise AddropError(
            f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    if not isinstance(raw.get("data"), str) or not raw["data"]:
        raise AddropError(f"{where}.data: expected the data directory, got {raw.get('data')!r}")
    arms_raw = raw.get("arms") or {}
    if not isinstance(arms_raw, dict):
        raise AddropError(f"{where}.arms: expected a mapping name -> options, got {arms_raw!r}")
    arms = [
        Arm(str(name), _options(options, f"{where}.arms.{name}"))
        for name, options in arms_raw.items()
    ]
    grid = {}
    if raw.get("grid") is not None:
        arms += expand_grid(raw["grid"], f"{where}.grid")
        grid = {key: (shlex.join(_options(value, f"{where}.grid.options")) if key == "options"
                      else list(value)) for key, value in raw["grid"].items()}
    names = [arm.name for arm in arms]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise AddropError(f"{where}: arm name(s) {', '.join(duplicated)} given twice")
    if not arms:
        raise AddropError(f"{where}: no arms (give arms: and/or grid:)")
    baseline = str(raw.get("baseline", names[0]))
    if baseline not in names:
        raise AddropError(f"{where}.baseline: {baseline!r} is not an arm ({', '.join(names)})")
    seeds = raw.get("seeds", [1])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise AddropError(f"{where}.seeds: expected a list of distinct integers, got {seeds!r}")
    select = raw.get("select", {"metric": "loss", "maximize": False})
    if not isinstance(select, dict) or not isinstance(select.get("metric"), str):
        raise AddropError(
            f"{where}.select: expected {{metric: NAME, maximize: BOOL}}, got {select!r}"
        )
    test = dict(raw.get("test") or {"kind": "none"})
    if test.get("kind") not in TEST_KINDS:
        raise AddropError(
            f"{where}.test.kind: {test.get('kind')!r} is not one of {', '.join(TEST_KINDS)}"
        )
    report_split = raw.get("report_split")
    if report_split is not None:
        if not isinstance(report_split, str) or report_split in ("train", "valid", "trainset"):
            raise AddropError(
                f"{where}.report_split: expected a split name other than train, valid and "
                f"trainset, got {report_split!r}"
            )
        if test["kind"] != "none":
            raise AddropError(
                f"{where}.report_split: the test score is read from the training log at the "
                f"epoch chosen on dev; test.kind must be none, not {test['kind']!r}"
            )
    return Spec(
        data=raw["data"],
        train=_options(raw.get("train"), f"{where}.train"),
        arms=arms,
        baseline=baseline,
        seeds=list(seeds),
        select_metric=select["metric"],
        maximize=bool(select.get("maximize", False)),
        test=test,
        valid_on_train=bool(raw.get("valid_on_train", False)),
        report_split=report_split,
        grid=grid,
    )


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AddropError(f"{path}: cannot read the spec ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise AddropError(f"{path}: not UTF-8 (byte 0x{error.object[error.start]:02x})") from None
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as error:  # yaml.YAMLError / json.JSONDecodeError: both say where
        raise AddropError(
            f"{path}: not a valid spec file ({' '.join(str(error).split())})"
        ) from None
    return build_spec(raw, str(path))

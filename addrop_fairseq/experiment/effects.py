"""The results at a glance: every study's AD-DROP arms (GA and RD) against plain on its test metric.

A study is a directory of ``addrop-compare`` output (``spec.json``, ``results.jsonl``); its
primary metric is the one it reports, the test metric of the checkpoint chosen on dev (entity F1
for NER, BLEU for translation; for GLUE, the official dev split's score at the epoch chosen on the
selection split: the held-out protocol). Each shown arm is paired with the spec's baseline seed by
seed: mean difference, 95% t interval and the number of seeds (``stats.paired_difference``). The
effects file (YAML) says which arms are shown::

    studies:
      - dir: ner200                    # relative to the effects file's directory
        label: NER-200
        setting: CoNLL-2003, 200 training sentences, MiniLM-L6
        arms:                          # GA and/or RD, each a list of arm names of the spec
          GA: [ga-p0.3-q0.3, ga-p0.8-q0.1]
          RD: [rd-p0.3-q0.3]
        metric: test entity F1         # optional: the metric in words (default: from the spec)
                                       # (an arm named "held-out choice": the cell of the spec's
                                       # p x q grid chosen on its selection split)
        planned: true                  # optional: a study still running; skipped (and listed as
                                       # not yet run) while it lacks results or 2 paired seeds

A study that is not planned must have its results: a missing directory, an arm its spec lacks or
an arm with fewer than 2 paired seeds is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import AddropError
from . import protocols, stats
from .families import Runs, quantity, read_studies
from .runner import RESULTS, read_results
from .spec import load_spec

HELD_OUT_CHOICE = "held-out choice"  # a grid's cell chosen on the selection split, as an arm
KINDS = ("GA", "RD")  # the attribution of an AD-DROP arm: gradient, or a random region (paper 4.2)
MIN_SEEDS = 2  # the fewest paired seeds that give an interval


@dataclass
class Effect:
    study: str  # the study's label
    setting: str
    metric: str  # what the test metric is, in words
    unit: str  # the metric's name: effects in the same unit share a panel
    kind: str  # GA or RD
    arm: str  # the arm's name in the spec
    baseline: str
    difference: stats.Paired

    @property
    def row_label(self) -> str:
        """"GA p0.3-q0.3" for an arm named ga-p0.3-q0.3, "GA" for one named ga."""
        rest = self.arm
        if rest.lower().startswith(self.kind.lower()):
            rest = rest[len(self.kind):].lstrip("-_ ")
        return f"{self.kind} {rest}".strip()


@dataclass
class Effects:
    effects: list[Effect]
    not_yet_run: list[str]  # planned studies (or their arms) without enough results, as text


def load_effects_file(path) -> list[dict]:
    studies = read_studies(path, "effects file")
    for i, study in enumerate(studies):
        where = f"{path}: studies[{i}]"
        if not isinstance(study, dict):
            raise AddropError(f"{where}: expected a mapping, got {study!r}")
        for key in ("dir", "label", "setting"):
            if not isinstance(study.get(key), str) or not study[key]:
                raise AddropError(f"{where}: no {key!r}")
        arms = study.get("arms")
        if not isinstance(arms, dict) or not arms:
            raise AddropError(f"{where} ({study['dir']}): expected arms: {{GA: [...], RD: [...]}}")
        for kind, names in arms.items():
            if kind not in KINDS:
                raise AddropError(
                    f"{where} ({study['dir']}): arms: {kind!r} is not one of {', '.join(KINDS)}"
                )
            if not isinstance(names, list) or not names or not all(
                isinstance(n, str) for n in names
            ):
                raise AddropError(
                    f"{where} ({study['dir']}): arms.{kind}: expected a list of arm names, "
                    f"got {names!r}"
                )
    return studies


def _held_out_cell(spec, results_path: Path, where: str) -> str | None:
    """The p x q cell the held-out protocol picks (experiment/protocols.py): the one whose mean
    selection-split score is best, so the reported split played no part in choosing it."""
    cells = [arm.name for arm in spec.arms if set(arm.grid) == {"p", "q"}]
    if not cells or not spec.report_split:
        raise AddropError(f"{where}: {HELD_OUT_CHOICE!r} needs a spec with a p x q grid and a "
                          "report_split")
    cell, _ = protocols.choose_cell(read_results(results_path), cells, spec.baseline,
                                    protocols.HELD_OUT, spec.maximize)
    return cell


def _metric_of(spec) -> tuple[str, str]:
    """(the test metric in words, its unit) as the spec's runs report it."""
    unit = stats.test_metric_name(spec)
    split = spec.report_split or spec.test.get("split", "test")
    return f"{split} {unit}", unit


def collect(path) -> Effects:
    """Every shown arm of every study of an effects file, paired against its spec's baseline."""
    path = Path(path)
    root = path.parent
    runs = Runs(root)
    effects, not_yet_run = [], []
    for study in load_effects_file(path):
        directory = study["dir"]
        planned = bool(study.get("planned", False))
        where = f"{path}: study {directory!r}"
        spec_path, results_path = root / directory / "spec.json", root / directory / RESULTS
        if not spec_path.is_file() or not results_path.is_file():
            if planned:
                not_yet_run.append(study["label"])
                continue
            raise AddropError(f"{where}: no results there (no {spec_path} or {results_path})")
        spec = load_spec(spec_path)
        metric, unit = _metric_of(spec)
        metric = study.get("metric") or metric
        value = quantity("test")[2]
        names = [arm.name for arm in spec.arms]
        waiting = []
        for kind, arms in study["arms"].items():
            for arm in arms:
                if arm == HELD_OUT_CHOICE:
                    arm = _held_out_cell(spec, results_path, where)
                    if arm is None:
                        if not planned:
                            raise AddropError(f"{where}: no grid cell has runs to choose from")
                        waiting.append(HELD_OUT_CHOICE)
                        continue
                if arm not in names:
                    raise AddropError(
                        f"{where}: arm {arm!r} is not an arm of its spec ({', '.join(names)})"
                    )
                try:
                    arm_runs = runs.by_seed(f"{directory}/{arm}")
                    base_runs = runs.by_seed(f"{directory}/{spec.baseline}")
                except AddropError:
                    if not planned:
                        raise
                    waiting.append(arm)
                    continue
                difference = stats.paired_difference(
                    {s: value(r) for s, r in arm_runs.items()},
                    {s: value(r) for s, r in base_runs.items()},
                )
                if difference is None or difference.n < MIN_SEEDS:
                    if planned:
                        waiting.append(arm)
                        continue
                    raise AddropError(
                        f"{where}: arm {arm!r} minus {spec.baseline!r} on the test metric: fewer "
                        f"than {MIN_SEEDS} seeds with a value on both sides"
                    )
                # a study still running shows what has landed, and says so
                setting = study["setting"] + (
                    f" (running: {len(spec.seeds)} seeds planned)" if planned else "")
                effects.append(
                    Effect(
                        study["label"], setting, metric, unit, kind, arm,
                        spec.baseline, difference,
                    )
                )
        if waiting:
            not_yet_run.append(f"{study['label']} ({', '.join(waiting)})")
    if not effects:
        raise AddropError(f"{path}: no study has results yet (planned: {', '.join(not_yet_run)})")
    return Effects(effects, not_yet_run)


def _interval(d: stats.Paired) -> str:
    return f"{d.mean:+.2f} [{d.low:.2f}, {d.high:.2f}]"


def effects_markdown(result: Effects, command: str) -> str:
    """The summary table: one row per shown arm, in the effects file's order."""
    lines = [
        f"<!-- written by `{command}`; do not edit -->",
        "",
        "| study | setting | test metric | arm | AD-DROP minus plain [95% CI] | seeds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    previous = None
    for e in result.effects:
        # a study's name, setting and metric only on its first row: the table reads by study
        first = e.study != previous
        previous = e.study
        study = f"| {e.study} | {e.setting} | {e.metric} " if first else "| | | "
        lines.append(
            f"{study}| {e.row_label} | {_interval(e.difference)} | {e.difference.n} |"
        )
    lines += [
        "",
        "Paired by seed (arm minus plain, same seeds), Student's t interval over the seeds; an "
        "interval that leaves out 0 is a difference beyond the seed spread for that one "
        "comparison (Holm's correction per study: `docs/results/holm.md`).",
    ]
    if result.not_yet_run:
        lines += ["", f"Planned, not yet run: {'; '.join(result.not_yet_run)}."]
    return "\n".join(lines) + "\n"


def effects_by_unit(result: Effects) -> dict[str, list[Effect]]:
    """Effects grouped by their metric's unit, in first-seen order (one forest panel each)."""
    groups: dict[str, list[Effect]] = {}
    for e in result.effects:
        groups.setdefault(e.unit, []).append(e)
    return groups


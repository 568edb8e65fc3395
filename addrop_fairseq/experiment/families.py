"""Families of comparisons over finished comparison runs, each corrected with Holm's method.

A study reports many paired differences; an interval that leaves out 0 is "beyond the seed
spread" for that one comparison, but among m comparisons some do so by chance. A family file
says which comparisons a study's reading rests on; every comparison gets its t-test p-value and
its Holm-adjusted p-value over its study's family (``stats.holm_adjusted``). The file (YAML)::

    studies:
      - name: NER-200
        why: every arm against plain on what the section reads (dev F1, test F1, loss gap)
        labels: {dev: dev F1, test: test F1}                  # optional names of quantities
        contrasts:
          - arms: [ner200/ga-p0.3-q0.3, ner200/rd-p0.3-q0.3]   # DIR/ARM: DIR/results.jsonl
            baseline: ner200/plain
            quantities: [dev, test, gap_last]                 # keys of QUANTITIES
            primary: [dev, test]                              # also in the primary family
          - arms: [plain-gap/length-batches]
            baseline: plain-gap/hf_reference.jsonl            # {seed, dev, test} or runner records
            quantities: [dev, test]
            paired: false                                     # Welch: seeds of two programs

Each study has two families: all its comparisons, and the primary ones (those that a contrast's
``primary`` lists), each with its own Holm adjustment. DIR is relative to the family file's
directory. ``train_loss@K`` and ``trainset_loss@K`` are the
logged (in AD-DROP epochs, masked) and the unmasked training-split loss after epoch K. For
the studies with a report split (GLUE), ``test`` is its score at the epoch chosen on the
selection split (held-out protocol), ``paper`` at the epoch chosen on the report split itself,
and ``optimism`` the difference of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import AddropError
from . import protocols, stats
from .runner import read_results


def _best(field):
    return lambda r: (r.get("best") or {}).get(field)


def _last_epoch(field):
    return lambda r: r["epochs"][-1].get(field) if r.get("epochs") else None


def _reported(protocol):
    """The report split's score at the epoch a protocol chooses (experiment/protocols.py), for
    the GLUE studies' metrics, all of which are better higher."""
    def value(record):
        score = protocols.run_score(record, protocol, maximize=True)
        return None if score is None else score.reported

    return value


def _optimism(record):
    """How much choosing the epoch on the report split raises a run's reported score: an arm's
    contrast against the baseline in this quantity is the optimism of its gain."""
    held_out, paper = _reported(protocols.HELD_OUT)(record), _reported(protocols.PAPER)(record)
    return None if held_out is None or paper is None else paper - held_out


def _lowest_dev_loss(record):
    losses = [e["valid_loss"] for e in record.get("epochs", []) if e.get("valid_loss") is not None]
    return min(losses) if losses else None


# name -> (label, digits, value of one run's record or None)
QUANTITIES = {
    "dev": ("dev metric, best epoch", 2, _best("valid_metric")),
    "test": ("test metric", 2, lambda r: r.get("test_metric")),
    "gap_last": (
        "dev - training-split loss, last epoch",
        3,
        lambda r: stats.loss_gap(r["epochs"][-1]) if r.get("epochs") else None,
    ),
    "gap_best": ("dev - training-split loss, best epoch", 3, lambda r: stats.loss_gap(r["best"])),
    "trainset_best": ("training-split loss, best epoch", 3, _best("trainset_loss")),
    "trainset_last": ("training-split loss, last epoch", 3, _last_epoch("trainset_loss")),
    "best_epoch": ("best epoch", 1, _best("epoch")),
    "lowest_dev_loss": ("lowest dev loss", 3, _lowest_dev_loss),
    "paper": ("report-split metric, epoch best on it (the paper's protocol)", 2,
              _reported(protocols.PAPER)),
    "optimism": ("report-split metric, paper's minus held-out epoch", 2, _optimism),
    "leak": (
        "logged minus unmasked training loss, AD-DROP epochs",
        3,
        lambda r: stats.masked_minus_unmasked(r, True)[0],
    ),
}


def quantity(name: str):
    """(label, digits, function of a record) of a quantity name, ``train_loss@K`` included."""
    if name in QUANTITIES:
        return QUANTITIES[name]
    field, sep, epoch = name.partition("@")
    if sep and field in ("train_loss", "trainset_loss") and epoch.isdigit() and int(epoch) > 0:
        k = int(epoch)
        words = "logged training loss" if field == "train_loss" else "training-split loss"

        def value(record):
            epochs = record.get("epochs", [])
            return epochs[k - 1].get(field) if len(epochs) >= k else None

        return f"{words}, epoch {k}", 3, value
    known = ", ".join(list(QUANTITIES) + ["train_loss@K", "trainset_loss@K"])
    raise AddropError(f"quantity {name!r} is not known ({known})")


@dataclass
class Row:
    arm: str
    baseline: str
    quantity: str
    paired: bool
    difference: object  # stats.Paired or stats.Unpaired
    primary: bool = False
    holm_p: float = math.nan  # over all the study's comparisons
    primary_holm_p: float = math.nan  # over its primary ones (nan if not one of them)


class Runs:
    """The finished runs named DIR/ARM (DIR/results.jsonl) or FILE.jsonl: a reference loop's
    runs, flat ({seed, dev, test}: NER) or in the runner's record shape (GLUE)."""

    def __init__(self, root: Path):
        self.root = root
        self._files: dict[Path, list[dict]] = {}

    def _read(self, path: Path) -> list[dict]:
        if path not in self._files:
            if not path.is_file():
                raise AddropError(f"{path}: no such results file")
            self._files[path] = read_results(path)
        return self._files[path]

    def by_seed(self, name: str) -> dict[int, dict]:
        if name.endswith(".jsonl"):
            flat = self._read(self.root / name)
            return {
                r["seed"]: r if "best" in r else
                {"best": {"valid_metric": r.get("dev")}, "test_metric": r.get("test")}
                for r in flat
            }
        directory, sep, arm = name.rpartition("/")
        if not sep:
            raise AddropError(f"run set {name!r}: expected DIR/ARM or FILE.jsonl")
        path = self.root / directory / "results.jsonl"
        chosen = {}
        for record in self._read(path):  # the last finished record of each seed counts
            if record.get("arm") == arm and record.get("status") == "ok":
                chosen[record["seed"]] = record
        if not chosen:
            raise AddropError(f"{path}: no finished run of arm {arm!r}")
        return chosen


def evaluate_study(study: dict, runs: Runs) -> list[Row]:
    """Every comparison of one study, with its p-value and its Holm p over the study."""
    rows = []
    for contrast in study.get("contrasts") or []:
        paired = bool(contrast.get("paired", True))
        base = runs.by_seed(contrast["baseline"])
        for arm_name in contrast["arms"]:
            arm = runs.by_seed(arm_name)
            for name in contrast["quantities"]:
                value = quantity(name)[2]
                if paired:
                    difference = stats.paired_difference(
                        {s: value(r) for s, r in arm.items()},
                        {s: value(r) for s, r in base.items()},
                    )
                else:
                    difference = stats.welch_difference(
                        [value(r) for r in arm.values()], [value(r) for r in base.values()]
                    )
                if difference is None or math.isnan(difference.p):
                    raise AddropError(
                        f"{study.get('name')}: {arm_name} minus {contrast['baseline']} on "
                        f"{name}: fewer than 2 seeds with a value on both sides"
                    )
                primary = name in (contrast.get("primary") or [])
                rows.append(Row(arm_name, contrast["baseline"], name, paired, difference, primary))
    for row, adjusted in zip(rows, stats.holm_adjusted([row.difference.p for row in rows])):
        row.holm_p = adjusted
    primary = [row for row in rows if row.primary]
    for row, adjusted in zip(primary, stats.holm_adjusted([row.difference.p for row in primary])):
        row.primary_holm_p = adjusted
    return rows


def _p(value: float) -> str:
    return "< 0.001" if value < 0.0005 else f"{value:.3f}"


def study_markdown(study: dict, rows: list[Row], alpha: float = 0.05) -> str:
    primary = [row for row in rows if row.primary]
    lines = [
        f"### {study['name']}: {len(rows)} comparisons, {len(primary)} primary",
        "",
        str(study.get("why", "")).strip(),
        "",
        f"| comparison | quantity | seeds | difference [95% CI] | p | Holm p over the "
        f"{len(primary)} primary | Holm p over all {len(rows)} |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        label, digits, _ = quantity(row.quantity)
        label = (study.get("labels") or {}).get(row.quantity, label)
        d = row.difference
        seeds = d.n if row.paired else f"{d.n_a} / {d.n_b} (Welch)"
        lines.append(
            f"| {row.arm} minus {row.baseline} | {label} | {seeds} | {d.mean:+.{digits}f} "
            f"[{d.low:.{digits}f}, {d.high:.{digits}f}] | {_p(d.p)} "
            f"| {_p(row.primary_holm_p) if row.primary else '-'} | {_p(row.holm_p)} |"
        )

    def count(rows, field):
        return sum(getattr(row, field) < alpha for row in rows)

    raw = sum(row.difference.p < alpha for row in rows)
    raw_primary = sum(row.difference.p < alpha for row in primary)
    lines += [
        "",
        f"p < {alpha:g} (the interval leaves out 0): {raw_primary} of the {len(primary)} primary "
        f"comparisons, {raw} of all {len(rows)}; Holm p < {alpha:g}: "
        f"{count(primary, 'primary_holm_p')} of the primary, {count(rows, 'holm_p')} of all.",
    ]
    return "\n".join(lines) + "\n"


def read_studies(path, what: str) -> list:
    """The ``studies`` list of a YAML file of studies (``what`` names the file in errors)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AddropError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise AddropError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    studies = raw.get("studies") if isinstance(raw, dict) else None
    if not isinstance(studies, list) or not studies:
        raise AddropError(f"{path}: expected a mapping with a non-empty list 'studies'")
    return studies


def load_families(path) -> list[dict]:
    studies = read_studies(path, "family file")
    for i, study in enumerate(studies):
        where = f"{path}: studies[{i}]"
        if not isinstance(study, dict) or not study.get("name"):
            raise AddropError(f"{where}: expected a mapping with a name")
        for j, contrast in enumerate(study.get("contrasts") or []):
            if not isinstance(contrast, dict):
                raise AddropError(f"{where}.contrasts[{j}]: expected a mapping")
            for key in ("arms", "baseline", "quantities"):
                if not contrast.get(key):
                    raise AddropError(f"{where}.contrasts[{j}]: no {key!r}")
            for name in contrast["quantities"]:
                quantity(name)
    return studies


def families_markdown(path) -> str:
    """Every study of a family file, as markdown tables."""
    path = Path(path)
    runs = Runs(path.parent)
    return "\n".join(study_markdown(s, evaluate_study(s, runs)) for s in load_families(path))

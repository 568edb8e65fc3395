"""Per-arm means over seeds and paired differences against the baseline arm."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import AddropError


@dataclass
class Paired:
    n: int
    mean: float  # mean of (arm - baseline) over the seeds both finished
    low: float  # 95% t interval of that mean (nan with one seed)
    high: float
    wins: int
    losses: int
    ties: int
    p: float = math.nan  # two-sided paired t-test of mean 0 (nan with one seed)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan for a single value)."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def paired_difference(arm: dict, baseline: dict, confidence: float = 0.95) -> Paired | None:
    """Seed -> value maps in, the paired difference over the common seeds out (None if none).

    The interval is Student's t on the per-seed differences: mean +- t_{n-1} * sd / sqrt(n).
    """
    seeds = sorted(
        seed
        for seed in arm
        if seed in baseline and arm[seed] is not None and baseline[seed] is not None
    )
    if not seeds:
        return None
    diff = np.array([arm[s] - baseline[s] for s in seeds], dtype=float)
    mean = float(diff.mean())
    p = _one_sample_p(diff)
    if len(diff) > 1:
        half = float(
            stats.t.ppf(0.5 + confidence / 2, len(diff) - 1)
            * diff.std(ddof=1)
            / math.sqrt(len(diff))
        )
    else:
        half = math.nan
    return Paired(
        len(diff),
        mean,
        mean - half,
        mean + half,
        int((diff > 0).sum()),
        int((diff < 0).sum()),
        int((diff == 0).sum()),
        p,
    )


def _one_sample_p(diff: np.ndarray) -> float:
    """Two-sided p of Student's t-test that the differences' mean is 0 (what scipy's ttest_rel
    computes from the two sides). Differences without spread give 0 (or 1 if all are 0), where
    scipy gives nan; nan with one difference."""
    if len(diff) < 2:
        return math.nan
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else 0.0
    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def holm_adjusted(p_values) -> list[float]:
    """Holm's step-down adjustment of a family of p-values, in the order given.

    Sorted ascending, the i-th smallest (i = 1..m) becomes (m - i + 1) * p_(i), raised to the
    largest adjusted value before it (so that the order is kept) and capped at 1. Rejecting where
    the adjusted value is at most alpha keeps the chance of any false rejection in the family at
    most alpha, whatever the dependence between the tests."""
    values = [float(p) for p in p_values]
    bad = [p for p in values if not 0.0 <= p <= 1.0]  # nan fails both comparisons
    if bad:
        raise AddropError(f"holm_adjusted: {bad[0]!r} is not a p-value in [0, 1]")
    m = len(values)
    adjusted = [math.nan] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: values[i])):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return adjusted


@dataclass
class Unpaired:
    n_a: int
    n_b: int
    mean: float  # mean(a) - mean(b)
    low: float  # Welch's 95% interval of that difference (nan with fewer than 2 per side)
    high: float
    p: float = math.nan  # two-sided Welch t-test of a difference of 0


def welch_difference(a, b, confidence: float = 0.95) -> Unpaired:
    """mean(a) - mean(b) with Welch's t interval, for two sets of runs that share no pairing
    (e.g. seeds of two different training programs: seed 1 here is not seed 1 there)."""
    a = np.asarray([v for v in a if v is not None], dtype=float)
    b = np.asarray([v for v in b if v is not None], dtype=float)
    if a.size == 0 or b.size == 0:
        return Unpaired(int(a.size), int(b.size), math.nan, math.nan, math.nan)
    mean = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Unpaired(int(a.size), int(b.size), mean, math.nan, math.nan)
    if a.var() == 0 and b.var() == 0:  # scipy's interval is nan without any spread
        return Unpaired(int(a.size), int(b.size), mean, mean, mean, 1.0 if mean == 0 else 0.0)
    test = stats.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(confidence)
    return Unpaired(
        int(a.size), int(b.size), mean, float(interval.low), float(interval.high), float(test.pvalue)
    )


def loss_gap(epoch: dict):
    """Dev loss minus training loss of one epoch: the unmasked training-split loss where it was
    evaluated (``valid_on_train``), else the logged training loss; None if either is missing."""
    train = epoch.get("trainset_loss", epoch.get("train_loss"))
    if epoch.get("valid_loss") is None or train is None:
        return None
    return epoch["valid_loss"] - train


def masked_minus_unmasked(record: dict, addrop_epochs: bool) -> tuple[float | None, int]:
    """Mean over a run's AD-DROP epochs (or its plain ones) of the logged training loss minus the
    unmasked training-split loss after the same epoch, and the number of epochs averaged.

    In an AD-DROP epoch the logged loss is the masked second pass's: a mask that carries the
    targets (the gold-target collapse of docs/results.md) drives it far below the unmasked loss.
    Short of that it is no pure measure of the masked task's difficulty, since a model trained
    under masks also finds the unmasked pass unfamiliar. None where the run has no such epoch or
    was trained without ``valid_on_train``."""
    gaps = [
        e["train_loss"] - e["trainset_loss"]
        for e in record.get("epochs", [])
        if bool(e.get("addrop")) == addrop_epochs
        and e.get("train_loss") is not None
        and e.get("trainset_loss") is not None
    ]
    return (sum(gaps) / len(gaps) if gaps else None), len(gaps)


def times_complete(record: dict) -> bool:
    """Whether a record's wall and CPU times cover the whole run. Records written before the
    runner kept ``attempts.json`` count only the last attempt of a resumed run, which covers the
    whole run only where that attempt trained every logged epoch (``_one_attempt_trained_all``)."""
    if "times_complete" in record:
        return record["times_complete"]
    return not record.get("resumed", False) or _one_attempt_trained_all(record)


def _one_attempt_trained_all(record: dict) -> bool:
    """Read from fairseq's own clock: ``train_wall``, logged per epoch, accumulates over a run and
    restarts from 0 when fairseq resumes from an end-of-epoch checkpoint (its trainer resets the
    meters there). A log whose ``train_wall`` never falls and whose last value is within the
    record's wall time was therefore trained by the one attempt the record timed; a resume that
    trained the remaining epochs shows a fall, and one that trained nothing lasts less than the
    clock it inherited. Without ``train_wall`` nothing is known."""
    walls = [e.get("train_wall") for e in record.get("epochs", [])]
    if not walls or any(w is None for w in walls) or record.get("wall_s") is None:
        return False
    return all(b >= a for a, b in zip(walls, walls[1:])) and walls[-1] <= record["wall_s"]


def _times(runs, field: str) -> float:
    """Mean of a time field over the runs whose times are complete (nan if none are)."""
    return mean_std(r.get(field) for r in runs if times_complete(r))[0]


def _ratio(value: float, base: float) -> str:
    return "n/a" if not base or math.isnan(value) or math.isnan(base) else f"{value / base:.2f}x"


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def mean_pm(values, digits: int = 2) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} +- {std:.{digits}f}"


def against_reference(reference: list[tuple], arms: dict[str, list[tuple]],
                      columns: tuple[str, str], short: tuple[str, str]) -> str:
    """Markdown: mean +- std of two quantities (e.g. dev and test) for a reference training
    loop's seeds and for each arm's, and each arm minus the reference with Welch's 95% interval
    (seed s of one program is not seed s of the other, so nothing is paired)."""
    def interval(values, base):
        d = welch_difference(values, base)
        return f"{d.mean:+.2f} [{d.low:.2f}, {d.high:.2f}]"

    ref = [[row[i] for row in reference] for i in (0, 1)]
    lines = [
        f"| training loop | seeds | {columns[0]} | {columns[1]} | {short[0]}: minus the Hugging "
        f"Face loop [95% CI] | {short[1]}: minus the Hugging Face loop [95% CI] |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| Hugging Face loop (hf_reference.py) | {len(reference)} | {mean_pm(ref[0])} "
        f"| {mean_pm(ref[1])} | | |",
    ]
    for arm, rows in arms.items():
        values = [[row[i] for row in rows] for i in (0, 1)]
        lines.append(f"| fairseq `{arm}` | {len(rows)} | {mean_pm(values[0])} "
                     f"| {mean_pm(values[1])} | {interval(values[0], ref[0])} "
                     f"| {interval(values[1], ref[1])} |")
    return "\n".join(lines) + "\n"


# How the papers write the metrics that fairseq logs and GLUE names in lower case.
_METRIC_LABELS = {
    "mcc": "MCC",
    "f1": "F1",
    "acc_and_f1": "mean of accuracy and F1",
    "pearson": "Pearson r",
    "spearman": "Spearman rho",
    "pearson_and_spearman": "mean of Pearson and Spearman",
}


def metric_label(name: str) -> str:
    """A logged metric's name as a reader writes it ("mcc" -> "MCC"); others unchanged."""
    return _METRIC_LABELS.get(name, name)


def test_metric_name(spec) -> str:
    """What the spec's test evaluation scores, in words ("none" without one)."""
    if getattr(spec, "report_split", None):
        return metric_label(spec.select_metric)
    return {
        "ner": "entity F1",
        "translation": "BLEU",
        "glue": metric_label(str(spec.test.get("metric"))),
    }.get(spec.test.get("kind"), "none")


def summarise(spec, records: list[dict], higher_is_better: bool) -> str:
    """The markdown summary: every arm's dev/test over seeds, then each against the baseline."""
    by_arm = {
        arm.name: {r["seed"]: r for r in records if r["arm"] == arm.name and r["status"] == "ok"}
        for arm in spec.arms
    }
    failed = [r for r in records if r["status"] != "ok"]
    base = by_arm[spec.baseline]
    scorer = {
        "ner": "seqeval, `addrop-evaluate-ner`",
        "translation": "sacrebleu, beam 4",
        "glue": "`addrop-evaluate-glue`",
    }.get(spec.test.get("kind"))
    if getattr(spec, "report_split", None):
        scorer = "the training log's validation at the epoch chosen on dev"
    test_metric = f"{test_metric_name(spec)} ({scorer})" if scorer else "none"
    lines = [
        f"Dev metric: `{spec.select_metric}` ({'higher' if spec.maximize else 'lower'} is better; "
        f"it picks each run's checkpoint). Test metric on the "
        f"`{getattr(spec, 'report_split', None) or spec.test.get('split', 'test')}` "
        f"split: {test_metric} ({'higher' if higher_is_better else 'lower'} is better). "
        f"Seeds: {', '.join(map(str, spec.seeds))}.",
        "",
        "| arm | runs | dev (best epoch) | test | best epoch | dev - train loss (best / last "
        "epoch) | time per run (wall / training CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm in spec.arms:
        runs = by_arm[arm.name]
        gaps = f"{mean_pm(loss_gap(r['best']) for r in runs.values())} / " + mean_pm(
            loss_gap(r["epochs"][-1]) if r["epochs"] else None for r in runs.values()
        )
        lines.append(
            f"| {arm.name} | {len(runs)}/{len(spec.seeds)} "
            f"| {mean_pm(r['best'].get('valid_metric') for r in runs.values())} "
            f"| {mean_pm(r.get('test_metric') for r in runs.values())} "
            f"| {mean_pm(r['best'].get('epoch') for r in runs.values())} "
            f"| {gaps} | {_fmt(_times(runs.values(), 'wall_s') / 60, 1)} / "
            f"{_fmt(_times(runs.values(), 'train_cpu_s') / 60, 1)} min |"
        )
    lines += [
        "",
        f"Paired against `{spec.baseline}` (same seeds; arm minus baseline; 95% t interval):",
        "",
        "| arm | seeds | dev difference [95% CI] | test difference [95% CI] | "
        "test wins/losses/ties | time vs baseline (wall / CPU) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    base_wall, base_cpu = _times(base.values(), "wall_s"), _times(base.values(), "train_cpu_s")
    for arm in spec.arms:
        if arm.name == spec.baseline:
            continue
        runs = by_arm[arm.name]
        dev = paired_difference(
            {s: r["best"].get("valid_metric") for s, r in runs.items()},
            {s: r["best"].get("valid_metric") for s, r in base.items()},
        )
        test = paired_difference(
            {s: r.get("test_metric") for s, r in runs.items()},
            {s: r.get("test_metric") for s, r in base.items()},
        )
        wall, cpu = _times(runs.values(), "wall_s"), _times(runs.values(), "train_cpu_s")

        def cell(p):
            return "n/a" if p is None else f"{p.mean:+.2f} [{_fmt(p.low)}, {_fmt(p.high)}]"

        lines.append(
            f"| {arm.name} | {dev.n if dev else 0} | {cell(dev)} | {cell(test)} "
            f"| {f'{test.wins}/{test.losses}/{test.ties}' if test else 'n/a'} "
            f"| {_ratio(wall, base_wall)} / {_ratio(cpu, base_cpu)} |"
        )
    lines += [
        "",
        "Every run (dev = best dev epoch's metric, the checkpoint tested):",
        "",
        "| arm | seed | best epoch | dev | test | wall / training CPU time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for arm in spec.arms:
        for seed in spec.seeds:
            r = by_arm[arm.name].get(seed)
            if r:
                lines.append(
                    f"| {arm.name} | {seed} | {r['best'].get('epoch')} "
                    f"| {_fmt(r['best'].get('valid_metric'))} | {_fmt(r.get('test_metric'))} "
                    f"| {r['wall_s'] / 60:.1f} / {_fmt((r.get('train_cpu_s') or math.nan) / 60, 1)} "
                    f"min{'' if times_complete(r) else ' (resumed; last attempt only)'} |"
                )
    if any(not times_complete(r) for runs in by_arm.values() for r in runs.values()):
        lines += [
            "",
            "Times marked as the last attempt only (a run resumed before the runner kept "
            "`attempts.json`, whose log shows it resumed mid-run) are left out of the time "
            "means and ratios above.",
        ]
    if any(e.get("trainset_loss") is not None for r in records for e in r.get("epochs", [])):
        lines += [
            "",
            "Logged training loss minus the unmasked training-split loss after the same epoch, mean "
            "over the AD-DROP epochs and over the plain epochs (in an AD-DROP epoch the logged loss "
            "is the masked pass's):",
            "",
            "| arm | AD-DROP epochs | plain epochs |",
            "| --- | --- | --- |",
        ]
        for arm in spec.arms:
            runs = by_arm[arm.name].values()
            lines.append(
                f"| {arm.name} "
                f"| {mean_pm((masked_minus_unmasked(r, True)[0] for r in runs), 3)} "
                f"| {mean_pm((masked_minus_unmasked(r, False)[0] for r in runs), 3)} |"
            )
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {r['arm']} seed {r['seed']}: {r.get('error', '')}" for r in failed]
    return "\n".join(lines) + "\n"

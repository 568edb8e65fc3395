"""The prior attribution experiment (paper section 2.2, Fig. 2) as a comparison spec.

Four arms over the same seeds, all else equal: no dropping (``none``), and dropping at one rate
in the first layer, attributed with gradients of the gold label's target, among random, the
lowest- or the highest-attributed keys of each row. The rate r is the share of each row's keys a
strategy removes, so the three dropping arms remove the same amount and differ only in where:

- ``high`` / ``low``: ``--addrop-p r --addrop-q 1``: the ceil(r * n) highest / lowest keys of a
  row of n keys are all dropped (the paper's "sample positions with high or low attribution");
- ``random``: ``--addrop-strategy random --addrop-q r``: every valid key is a candidate, each
  dropped with probability r (r * n keys in expectation; ``--addrop-p`` plays no part).

AD-DROP is on in every epoch (``--addrop-schedule always``), not cross-tuned, as in the paper's
experiment. The runs are ``experiment.runner.Comparison`` runs, so they resume after a kill.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import AddropError
from ..experiment.plots import epoch_matrix
from ..experiment.spec import Spec, build_spec

ARMS = ("none", "random", "low", "high")


def prior_arms(rate: float, layers: str = "0", kinds: str | None = None) -> dict[str, str]:
    if not isinstance(rate, (int, float)) or math.isnan(rate) or not 0 < rate < 1:
        raise AddropError(f"--rate {rate!r}: expected a share of each row's keys, 0 < rate < 1")
    shared = f"--addrop-schedule always --addrop-target gold --addrop-attribution ga " \
             f"--addrop-layers {layers}"
    if kinds:
        shared += f" --addrop-modules {kinds}"
    return {
        "none": "--addrop-schedule off",
        "random": f"{shared} --addrop-strategy random --addrop-p {rate:g} --addrop-q {rate:g}",
        "low": f"{shared} --addrop-strategy low --addrop-p {rate:g} --addrop-q 1",
        "high": f"{shared} --addrop-strategy high --addrop-p {rate:g} --addrop-q 1",
    }


def prior_spec(base: dict, rate: float = 0.3, layers: str = "0", kinds: str | None = None,
               seeds: list[int] | None = None, valid_on_train: bool = True) -> Spec:
    """The base spec (a spec mapping: data, train, select, test, seeds) with its arms and grid
    replaced by the four strategies; ``none`` is the baseline."""
    raw = {key: value for key, value in base.items() if key not in ("arms", "grid", "baseline")}
    raw.update(arms=prior_arms(rate, layers, kinds), baseline="none",
               valid_on_train=valid_on_train)
    if seeds is not None:
        raw["seeds"] = seeds
    return build_spec(raw, "prior experiment spec")


def prior_experiment(spec_path, out, work_dir=None, rate: float = 0.3, layers: str = "0",
                     kinds: str | None = None, seeds: str | None = None,
                     valid_on_train: bool = True, jobs: int = 1, threads: int = 1,
                     keep_checkpoints: bool = False, retry_failed: bool = False,
                     report_only: bool = False) -> None:
    """``addrop-prior-experiment``: runs the four arms over the base spec at ``spec_path``
    through the comparison runner (what is recorded is kept) unless ``report_only``, then writes
    the comparison's report and OUT/prior.png, prior.md and prior.json. ``seeds``:
    comma-separated, overriding the spec's."""
    from ..experiment.runner import Comparison

    out = Path(out)
    seed_list = None
    if seeds:
        try:
            seed_list = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise AddropError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    spec = prior_spec(read_base(spec_path), rate, layers, kinds, seed_list,
                      valid_on_train=valid_on_train)
    comparison = Comparison(spec, out, work_dir, jobs=jobs, threads=threads,
                            keep_checkpoints=keep_checkpoints, retry_failed=retry_failed)
    if not report_only:
        comparison.run()
    comparison.report()
    title = (f"{out.name}: drop rate {rate:g}, layers {layers}, gold-label GA, "
             f"seeds {','.join(map(str, spec.seeds))}")
    write_report(comparison, title)


def read_base(path) -> dict:
    """The base spec file as a mapping; unlike a comparison spec it needs no arms."""
    from ..experiment.spec import load_spec

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return load_spec(path).to_dict()  # its one-line error names the file and the problem
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        else:
            import yaml
            raw = yaml.safe_load(text)
    except Exception:
        return load_spec(path).to_dict()
    if not isinstance(raw, dict):
        raise AddropError(f"{path}: expected a spec mapping, got {type(raw).__name__}")
    return raw


def epoch_means(runs_by_arm: dict[str, list[dict]]) -> dict:
    """{arm: {"epochs": [...], field: [mean over seeds per epoch]}} for the loss fields."""
    out = {}
    for arm, runs in runs_by_arm.items():
        if not runs:
            continue
        entry = {}
        for field in ("train_loss", "trainset_loss", "valid_loss", "valid_metric", "addrop_drop"):
            epochs, values = epoch_matrix(runs, field)
            with warnings.catch_warnings():  # an epoch no seed logged a field for is nan
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nanmean(values, axis=0) if values.size else values
            entry["epochs"] = epochs.tolist()
            entry[field] = [None if not np.isfinite(v) else round(float(v), 4) for v in means]
        entry["seeds"] = sorted(r["seed"] for r in runs)
        out[arm] = entry
    return out


def table(means: dict, metric: str) -> str:
    """Markdown: per epoch, each arm's training loss (unmasked where measured) and dev loss."""
    arms = [arm for arm in ARMS if arm in means] + [a for a in means if a not in ARMS]
    if not arms:
        return "No finished runs yet.\n"
    epochs = sorted({e for arm in arms for e in means[arm]["epochs"]})
    train_field = "trainset_loss" if any(
        v is not None for arm in arms for v in means[arm]["trainset_loss"]) else "train_loss"

    def cell(arm, field, epoch):
        entry = means[arm]
        if epoch not in entry["epochs"]:
            return ""
        value = entry[field][entry["epochs"].index(epoch)]
        return "" if value is None else f"{value:.3f}"

    lines = [f"Training loss ({'training split, unmasked' if train_field == 'trainset_loss' else 'logged'})"
             " / dev loss per epoch, mean over seeds:", "",
             "| epoch | " + " | ".join(f"{arm} train | {arm} dev" for arm in arms) + " |",
             "| --- |" + " --- | --- |" * len(arms)]
    for epoch in epochs:
        lines.append(f"| {epoch} | " + " | ".join(
            f"{cell(arm, train_field, epoch)} | {cell(arm, 'valid_loss', epoch)}" for arm in arms) + " |")
    lines += ["", f"| arm | seeds | lowest dev loss (epoch) | last training loss | best dev {metric} "
              "| share of keys dropped |", "| --- | --- | --- | --- | --- | --- |"]
    for arm in arms:
        entry = means[arm]
        dev = [(v, e) for v, e in zip(entry["valid_loss"], entry["epochs"]) if v is not None]
        train = [v for v in entry[train_field] if v is not None]
        metric_values = [v for v in entry["valid_metric"] if v is not None]
        drops = [v for v in entry["addrop_drop"] if v]
        lowest = min(dev) if dev else None
        lines.append(
            f"| {arm} | {len(entry['seeds'])} | "
            f"{f'{lowest[0]:.3f} ({lowest[1]})' if lowest else 'n/a'} | "
            f"{f'{train[-1]:.3f}' if train else 'n/a'} | "
            f"{f'{max(metric_values):.2f}' if metric_values else 'n/a'} | "
            f"{f'{np.mean(drops):.3f}' if drops else '0'} |")
    return "\n".join(lines) + "\n"


def write_report(comparison, title: str = "") -> dict:
    """prior.png (two panels), prior.md (the table) and prior.json (the plotted means) from the
    comparison's finished runs; returns what was drawn."""
    from ..experiment.plots import plot_loss_panels

    spec = comparison.spec
    ok = [r for r in comparison.records() if r["status"] == "ok"]
    by_arm = {arm.name: [r for r in ok if r["arm"] == arm.name] for arm in spec.arms}
    out = comparison.out_dir
    out.mkdir(parents=True, exist_ok=True)
    means = epoch_means(by_arm)
    options = {arm.name: " ".join(arm.options) for arm in spec.arms}
    (out / "prior.json").write_text(json.dumps({"arms": options, "means": means}, indent=1) + "\n",
                                    encoding="utf-8")
    header = "# Prior attribution experiment (paper section 2.2)\n\n" + "".join(
        f"- `{name}`: `{value}`\n" for name, value in options.items()) + "\n"
    (out / "prior.md").write_text(header + table(means, spec.select_metric), encoding="utf-8")
    if not ok:
        return {}
    return plot_loss_panels(by_arm, out / "prior.png", title)

"""A faithfulness probe of the attributions: evaluate a split while removing, at inference, the
top k%, the bottom k% or a random k% of each attention row's keys, for k = 0, 10, ..., 90.

If the attribution is faithful, removing the highest-attributed keys hurts the task metric and the
loss fastest, and removing the lowest-attributed ones slowest.

Each masked evaluation is training's own two-pass forward (``step.addrop_forward`` through the
criterion, see ``loading.addrop_pass``) with q = 1: the candidate region of ``mask.addrop_mask``
is removed whole. ``high`` ranks keys by the attribution (strategy high), ``low`` by its negative
(strategy low), ``random`` draws the region at random (RD), so all three remove exactly
``ceil(k * n)`` of a row's n valid keys (a row keeps at least one key, as in training). k = 0 is
the plain evaluation, the same numbers fairseq's validation logs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..errors import AddropError
from ..core.step import AddropSettings
from .loading import Loaded, addrop_pass, expected_removed, finite, plain_pass

ORDERS = ("high", "low", "random")
DEFAULT_SHARES = tuple(k / 100 for k in range(0, 100, 10))


def parse_shares(text: str) -> List[float]:
    """``--k``: comma-separated percentages of each row's keys -> sorted shares."""
    try:
        values = [int(x) / 100 for x in text.split(",") if x.strip()]
    except ValueError:
        raise AddropError(f"--k {text!r}: expected comma-separated percentages, e.g. 0,10,50") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise AddropError(f"--k {text!r}: percentages must be in 0..99")
    return sorted(set(values))


def probe_attribution(path, data, out: Path, split: str = "valid", kinds: Optional[str] = None,
                      layers: str = "all", percentages: str = "0,10,20,30,40,50,60,70,80,90",
                      orders: Sequence[str] = ORDERS, attribution: str = "ga",
                      iga_steps: int = 20, target: str = "pseudo", metric: Optional[str] = None,
                      beam: int = 4, post_process: str = "sentencepiece", seed: int = 1,
                      max_tokens: Optional[int] = None, batch_size: Optional[int] = None,
                      max_examples: Optional[int] = None, json_path: Optional[Path] = None,
                      cpu: bool = False):
    """``addrop-probe-attribution``: the probe of ``split`` (its first batches holding
    ``max_examples`` examples, if given) drawn into ``out`` (a PNG) and written with every point
    into ``json_path`` (default: OUT with .json). Returns ``(result, json_path)``."""
    from ..experiment.relative import relative_path
    from ..scoring.checkpoint import batches
    from .loading import chosen_modules, load_checkpoint

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise AddropError(f"--out {out}: expected a .png file name")
    shares = parse_shares(percentages)
    start = time.time()
    loaded = load_checkpoint(path, data, [split], cpu)
    modules = chosen_modules(loaded.model, kinds or loaded.criterion.addrop_kinds, layers)
    samples, count = [], 0
    for sample in batches(loaded, split, max_tokens, batch_size):
        if max_examples is not None and count >= max_examples:
            break
        samples.append(sample)
        count += sample["nsentences"]
    result = run_probe(loaded, samples, modules, shares, orders, attribution, target, seed,
                       metric, iga_steps, beam=beam, post_process=post_process)
    # "modules" (the attention kinds) as the committed probe results name them
    result.update(checkpoint=relative_path(path), data=relative_path(data), split=split,
                  examples=count,
                  attribution=attribution, target=target,
                  modules=sorted({m.kind for m in modules}),
                  layers=sorted({m.layer for m in modules}), seed=seed,
                  seconds=round(time.time() - start, 1))
    title = (f"{Path(path).name} on {split} ({count} examples): {attribution.upper()}, "
             f"{target} target, {', '.join(result['modules'])} layers {layers}")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_probe(result, out, title)
    json_path = Path(json_path) if json_path else out.with_suffix(".json")
    json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result, json_path


def default_metric(task) -> str:
    if hasattr(task, "tagging_counts"):
        return "f1"
    names = getattr(task, "metric_names", None)
    if names:
        return names[0]
    return "accuracy"  # translation: teacher-forced next-token accuracy (report_accuracy)


def evaluate(loaded: Loaded, samples, run_batch: Callable) -> Dict[str, float]:
    """fairseq's validation loop (fairseq_cli.train.validate with Trainer.valid_step): every
    batch's logging output reduced by the task inside one new root aggregator."""
    from fairseq.logging import metrics

    with metrics.aggregate(new_root=True) as aggregator:
        for sample in samples:
            log = run_batch(sample)
            with metrics.aggregate():
                loaded.task.reduce_metrics([log], loaded.criterion)
        values = aggregator.get_smoothed_values()
    return {key: finite(value) for key, value in values.items()}


class Bleu:
    """Corpus BLEU of beam search, as ``fairseq-generate --post-process P`` + ``addrop-score-bleu``
    compute it (sacrebleu, 13a), with the encoder's self-attention masked or not.

    The masks come from the teacher-forced pass (where AD-DROP attributes); generation runs the
    encoder once per batch, so its masks apply; decoder attention runs step by step with an
    incremental state, where the attention module never masks: only ``encoder_self`` can be
    probed this way."""

    def __init__(self, loaded: Loaded, beam: int = 4, post_process: str = "sentencepiece"):
        import argparse

        # built before any module is switched to training mode: the generator calls eval()
        self.generator = loaded.task.build_generator([loaded.model], argparse.Namespace(beam=beam))
        self.loaded, self.post_process = loaded, post_process
        self.hypotheses: List[str] = []
        self.references: List[str] = []

    def generate(self, sample):
        from fairseq import utils

        task = self.loaded.task
        hypos = task.inference_step(self.generator, [self.loaded.model], sample)
        strip = getattr(self.generator, "symbols_to_strip_from_output", {self.generator.eos})
        dictionary = task.target_dictionary
        for i in range(len(hypos)):
            target = utils.strip_pad(sample["target"][i], dictionary.pad()).int().cpu()
            self.references.append(dictionary.string(target, self.post_process, escape_unk=True,
                                                     extra_symbols_to_ignore=strip))
            self.hypotheses.append(dictionary.string(hypos[i][0]["tokens"].int().cpu(),
                                                     self.post_process,
                                                     extra_symbols_to_ignore=strip))
        return hypos

    def score(self) -> float:
        import sacrebleu

        value = sacrebleu.metrics.BLEU(tokenize="13a").corpus_score(
            self.hypotheses, [self.references]).score
        self.hypotheses, self.references = [], []
        return value


def bleu_pass(bleu: Bleu, loaded: Loaded, sample, modules, settings, generator, observe=None):
    """Beam search on ``sample`` with the masks of training's two-pass forward: the first pass
    is the teacher-forced model call the criterion makes, the second pass is generation."""
    from ..core.step import addrop_forward
    from .loading import _observed, inference_masking

    criterion, model = loaded.criterion, loaded.model
    net_input = sample["net_input"]

    def second_pass():
        for m in modules:
            if observe is not None and m.drop_fn is not None:
                m.drop_fn = _observed(m, m.drop_fn, observe)
        return bleu.generate(sample)

    with torch.enable_grad(), inference_masking(modules):
        _, stats = addrop_forward(
            modules, forward=second_pass, attribution_forward=lambda: model(**net_input),
            make_target=lambda first: criterion.attribution_target(model, sample, first),
            settings=settings, generator=generator)
    return stats


class RowCounter:
    """Counts, over every mask applied, the rows whose removed keys differ from ceil(k * n)."""

    def __init__(self, share: float):
        self.share = share
        self.rows = self.exact = self.removed = self.valid = 0

    def __call__(self, _module, valid, drop) -> None:
        n = valid.expand_as(drop).sum(-1)
        removed = (drop & valid).sum(-1)
        rows = n > 0
        self.rows += int(rows.sum())
        self.exact += int(((removed == expected_removed(n, self.share)) & rows).sum())
        self.removed += int(removed.sum())
        self.valid += int(n.sum())


def run_probe(loaded: Loaded, samples: List[dict], modules, shares=DEFAULT_SHARES,
              orders=ORDERS, attribution: str = "ga", target: str = "pseudo", seed: int = 1,
              metric: Optional[str] = None, iga_steps: int = 20,
              observe: Optional[Callable] = None, beam: int = 4,
              post_process: str = "sentencepiece") -> dict:
    """{"metric", "plain": {...}, "curves": {order: [point per share]}}; a point holds the
    metric, the loss and the counts of removed keys. ``metric="bleu"`` (translation, modules
    ``encoder_self`` only) scores beam search with ``beam`` and ``post_process``."""
    criterion, model, task = loaded.criterion, loaded.model, loaded.task
    for share in shares:
        if not 0.0 <= share < 1.0:
            raise AddropError(f"share {share!r}: expected 0 <= k < 1 (k = 1 would remove every key)")
    for order in orders:
        if order not in ORDERS:
            raise AddropError(f"order {order!r}: expected one of {ORDERS}")
    if attribution not in ("ga", "iga", "aa"):
        raise AddropError(f"--attribution {attribution!r}: expected ga, iga or aa")
    criterion.addrop_target = target
    if hasattr(criterion, "report_accuracy"):
        criterion.report_accuracy = True  # translation: teacher-forced accuracy as the metric
    metric = metric or default_metric(task)
    bleu = None
    if metric == "bleu":
        if not hasattr(task, "build_generator") or not hasattr(task, "src_dict"):
            raise AddropError("--metric bleu: only for translation checkpoints")
        wrong = sorted({m.kind for m in modules} - {"encoder_self"})
        if wrong:
            raise AddropError(f"--metric bleu: beam search can only be masked in encoder_self "
                              f"attention (decoder attention runs incrementally); got "
                              f"{', '.join(wrong)}: pass --modules encoder_self")
        bleu = Bleu(loaded, beam, post_process)

    plain = evaluate(loaded, samples, lambda sample: plain_pass(criterion, model, sample)[2])
    if bleu is not None:
        with torch.no_grad():
            for sample in samples:
                bleu.generate(sample)
        plain["bleu"] = bleu.score()
    if plain.get(metric) is None:
        known = ", ".join(sorted(k for k, v in plain.items() if v is not None))
        raise AddropError(f"--metric {metric!r}: this task's validation logs {known}")
    curves = {}
    for order in orders:
        points = []
        for share in shares:
            if share == 0:
                points.append({"k": 0.0, "metric": plain[metric], "loss": plain.get("loss"),
                               "removed": 0, "valid": None, "rows": None, "rows_exact": None})
                continue
            settings = AddropSettings(p=share, q=1.0, iga_steps=iga_steps,
                                      attribution="rd" if order == "random" else attribution,
                                      strategy="low" if order == "low" else "high")
            counter = RowCounter(share)
            generator = torch.Generator(device=loaded.device).manual_seed(seed)

            def observed(module, valid, drop, counter=counter):
                counter(module, valid, drop)
                if observe is not None:
                    observe(order, share, module, valid, drop)

            fallbacks = []

            def run_batch(sample, settings=settings, generator=generator, observed=observed):
                _, _, log, stats = addrop_pass(criterion, model, sample, modules, settings,
                                               generator, observe=observed)
                fallbacks.append(stats.fallback)
                return log

            values = evaluate(loaded, samples, run_batch)
            if bleu is not None:
                generator = torch.Generator(device=loaded.device).manual_seed(seed)
                for sample in samples:
                    stats = bleu_pass(bleu, loaded, sample, modules, settings, generator,
                                      observed)
                    fallbacks.append(stats.fallback)
                values["bleu"] = bleu.score()
            points.append({"k": share, "metric": values.get(metric), "loss": values.get("loss"),
                           "removed": counter.removed, "valid": counter.valid,
                           "rows": counter.rows, "rows_exact": counter.exact,
                           "fallback_batches": int(sum(fallbacks))})
        curves[order] = points
    return {"metric": metric, "plain": plain, "curves": curves}


def plot_probe(result: dict, path, title: str = "") -> dict:
    """Two panels, the task metric and the loss against k, one line per order; returns the
    plotted series {(panel, order): (ks, values)}."""
    from ..experiment.plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=90)
    drawn = {}
    styles = {"high": ("tab:red", "o"), "low": ("tab:blue", "s"), "random": ("tab:gray", "^")}
    for order, points in result["curves"].items():
        ks = [100 * p["k"] for p in points]
        for panel, field in enumerate(("metric", "loss")):
            values = [p[field] if p[field] is not None else float("nan") for p in points]
            color, marker = styles[order]
            axes[panel].plot(ks, values, marker=marker, color=color, markersize=3,
                             label=f"{order}-attribution keys removed" if order != "random"
                             else "random keys removed")
            drawn[(panel, order)] = (ks, values)
    axes[0].set_ylabel(result["metric"])
    axes[1].set_ylabel("loss")
    for ax, name in zip(axes, (result["metric"], "loss")):
        ax.set_xlabel("k: % of each row's keys removed")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn

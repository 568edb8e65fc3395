"""Attribution maps of one example (paper Fig. 1): per chosen layer and head, the attention
probabilities A, the attribution B, the candidate region and one sampled drop mask.

A and B come from training's record mode and attribution functions with the criterion's own
attribution target; the region from ``mask.candidate_region``; the mask is the one training's
two-pass forward (``step.addrop_forward``) applies for the same example and generator.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..core.contract import attention_mode
from ..core.attribution import attention_attribution, gradient_attribution, integrated_gradients
from ..errors import AddropError
from ..core.mask import candidate_region
from ..core.step import AddropSettings, _gradient_at
from .loading import Loaded, addrop_pass, inference_masking, plain_pass

METHODS = ("ga", "iga", "aa")  # RD has no scores to show


def attention_maps(loaded: Loaded, sample, modules, settings: AddropSettings, target: str,
                   seed: int) -> List[dict]:
    """One record per chosen module, for the batch's first example: ``probs``, ``scores``,
    ``region`` and ``mask`` [H, T, S] and ``valid`` [T, S] tensors, plus kind and layer."""
    if settings.attribution not in METHODS:
        raise AddropError(f"--attribution {settings.attribution!r}: expected one of {METHODS}")
    criterion, model = loaded.criterion, loaded.model
    criterion.addrop_target = target
    # how the criterion calls the model on this sample (task-specific arguments included)
    args, kwargs = plain_pass(criterion, model, sample)[3][0]

    def forward():
        return model(*args, **kwargs)

    with inference_masking(modules):
        # steps 1-2 as in step.addrop_forward: record A, attribute the criterion's target
        with torch.enable_grad(), attention_mode(modules, "record"):
            first = forward()
        probs = [m.recorded for m in modules]
        valids = [m.valid for m in modules]
        for m in modules:
            m.recorded = None
        if settings.attribution == "aa":
            scores = attention_attribution(probs)
        else:
            target_of = criterion.attribution_target(model, sample, first)
            if settings.attribution == "ga":
                scores = gradient_attribution(target_of(first), probs)
            else:
                scores = integrated_gradients(
                    [a.detach() for a in probs],
                    lambda alpha: _gradient_at(modules, forward, target_of, probs, alpha),
                    settings.iga_steps)
        del first
    # steps 3-4: training's own two-pass forward draws and applies the masks
    applied = {}
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    _, _, _, stats = addrop_pass(criterion, model, sample, modules, settings, generator,
                                 observe=lambda m, valid, drop: applied.setdefault(id(m), drop))
    if stats.fallback:
        raise AddropError("the attribution is not finite (NaN or inf): no mask was drawn")
    records = []
    for m, a, b, valid in zip(modules, probs, scores, valids):
        region = candidate_region(b, valid, settings.p, settings.strategy)
        records.append({
            "kind": m.kind, "layer": m.layer, "probs": a[0].detach().float().cpu(),
            "scores": b[0].detach().float().cpu(), "valid": valid[0, 0].cpu(),
            "region": region[0].cpu(), "mask": applied[id(m)][0].cpu(),
            "full": {"scores": b.detach(), "valid": valid},  # for checks against mask.py
        })
    return records


def axis_tokens(task, sample, kind: str, name=None):
    """(query tokens, key tokens) of the batch's first example for an attention kind;
    ``name`` maps a dictionary symbol to the label shown (see ``symbol_namer``)."""
    name = name or (lambda symbol: symbol)
    net = sample["net_input"]
    source = [name(task.source_dictionary[i]) for i in net["src_tokens"][0].tolist()]
    if kind == "encoder_self":
        return source, source
    target = [name(task.target_dictionary[i]) for i in net["prev_output_tokens"][0].tolist()]
    return (target, target) if kind == "decoder_self" else (target, source)


def symbol_namer(data: str):
    """GLUE data prepared with a Hugging Face tokenizer stores token ids as the dictionary's
    symbols (glue.json: "symbols": "ids"); their labels are the tokenizer's pieces when the
    recorded tokenizer can be loaded offline, the ids otherwise."""
    from ..tasks.addrop_sentence_prediction import read_meta

    meta = read_meta(data) or {}
    source = str(meta.get("tokenizer") or "")
    if meta.get("symbols") != "ids" or not source.startswith("hf:"):
        return None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source[3:], local_files_only=True)
    except Exception:  # a tokenizer moved or not installed: the ids are still right
        return None

    def name(symbol: str) -> str:
        return tokenizer.convert_ids_to_tokens(int(symbol)) if symbol.isdigit() else symbol

    return name


def parse_heads(spec: str, count: int) -> List[int]:
    if str(spec).strip() == "all":
        return list(range(count))
    try:
        heads = sorted({int(x) for x in str(spec).split(",") if x.strip()})
    except ValueError:
        raise AddropError(f"--heads {spec!r}: expected 'all' or comma-separated indices") from None
    if not heads or heads[0] < 0 or heads[-1] >= count:
        raise AddropError(f"--heads {spec!r}: the model has {count} heads (0..{count - 1})")
    return heads


def to_json(records: List[dict], heads: List[int], tokens) -> List[dict]:
    """The numbers behind the picture, one entry per (module, head)."""
    out = []
    for record, (queries, keys) in zip(records, tokens):
        for head in heads:
            out.append({
                "kind": record["kind"], "layer": record["layer"], "head": head,
                "query_tokens": queries, "key_tokens": keys,
                "valid": record["valid"].int().tolist(),
                "probs": record["probs"][head].tolist(),
                "scores": record["scores"][head].tolist(),
                "region": record["region"][head].int().tolist(),
                "mask": record["mask"][head].int().tolist(),
            })
    return out


def plot_maps(panels: List[dict], path, title: str = "") -> None:
    """Rows: (kind, layer, head); columns: A, B, candidate region, drop mask (Fig. 1 style).
    Positions a query may not attend to (padding, the future) are grey."""
    from ..experiment.plots import _pyplot

    plt = _pyplot()
    rows = len(panels)
    t = max(len(p["query_tokens"]) for p in panels)
    s = max(len(p["key_tokens"]) for p in panels)
    cell = 0.22 if max(t, s) <= 30 else 0.14
    width = max(2.4, cell * s + 1.2)
    height = max(2.2, cell * t + 1.0)
    fig, axes = plt.subplots(rows, 4, figsize=(4 * width, rows * height), dpi=80, squeeze=False)
    for row, panel in enumerate(panels):
        valid = np.array(panel["valid"], dtype=bool)
        name = f"{panel['kind']} layer {panel['layer']} head {panel['head']}"
        for col, (field, label, cmap) in enumerate((
                ("probs", "attention A", "Blues"), ("scores", "attribution B", "RdBu_r"),
                ("region", "candidate region", "Oranges"), ("mask", "dropped", "Reds"))):
            ax = axes[row, col]
            values = np.ma.masked_array(np.array(panel[field], dtype=float), mask=~valid)
            colormap = plt.get_cmap(cmap).with_extremes(bad="#d9d9d9")
            if field == "scores":
                limit = float(np.abs(values).max()) if values.count() else 1.0
                image = ax.imshow(values, cmap=colormap, vmin=-limit or -1, vmax=limit or 1)
            elif field in ("region", "mask"):
                image = ax.imshow(values, cmap=colormap, vmin=0, vmax=1)
            else:
                image = ax.imshow(values, cmap=colormap, vmin=0)
            if field == "mask":  # crossed positions, as the paper's figure marks them
                ys, xs = np.nonzero(np.array(panel["mask"], dtype=bool) & valid)
                ax.scatter(xs, ys, marker="x", s=12, c="black", linewidths=0.8)
            if field in ("probs", "scores"):
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(f"{label}\n{name}", fontsize=7)
            ax.set_xticks(range(len(panel["key_tokens"])), panel["key_tokens"], rotation=90,
                          fontsize=5)
            ax.set_yticks(range(len(panel["query_tokens"])), panel["query_tokens"], fontsize=5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def settings_from(criterion, p: Optional[float], q: Optional[float], attribution: Optional[str],
                  strategy: Optional[str], iga_steps: Optional[int]) -> AddropSettings:
    """The checkpoint's AD-DROP settings with the command line's overrides, validated as
    training validates them."""
    from ..core.mask import STRATEGIES, validate_rate

    base = criterion.addrop_settings
    settings = AddropSettings(
        p=validate_rate("p", p) if p is not None else base.p,
        q=validate_rate("q", q) if q is not None else base.q,
        attribution=attribution or base.attribution,
        iga_steps=iga_steps if iga_steps is not None else base.iga_steps,
        strategy=strategy or base.strategy)
    if settings.strategy not in STRATEGIES:
        raise AddropError(f"--strategy {settings.strategy!r}: expected one of {STRATEGIES}")
    if settings.iga_steps < 1:
        raise AddropError(f"--iga-steps {settings.iga_steps} must be >= 1")
    return settings


def plot_attribution(path, data, out: Path, split: str = "valid", index: int = 0,
                     kinds: Optional[str] = None, layers: str = "0", heads: str = "0",
                     attribution: str = "ga", iga_steps: Optional[int] = None,
                     target: Optional[str] = None, p: Optional[float] = None,
                     q: Optional[float] = None, strategy: Optional[str] = None, seed: int = 1,
                     json_path: Optional[Path] = None, cpu: bool = False) -> Path:
    """``addrop-plot-attribution``: the maps of example ``index`` of ``split`` drawn into ``out``
    (a PNG) and every plotted number into ``json_path`` (default: OUT with .json), which it
    returns. ``None`` options take the checkpoint criterion's values."""
    import json

    from ..experiment.relative import relative_path
    from .loading import chosen_modules, example, load_checkpoint

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise AddropError(f"--out {out}: expected a .png file name")
    loaded = load_checkpoint(path, data, [split], cpu)
    criterion = loaded.criterion
    modules = chosen_modules(loaded.model, kinds or criterion.addrop_kinds, layers)
    chosen_heads = parse_heads(heads, modules[0].num_heads)
    settings = settings_from(criterion, p, q, attribution, strategy, iga_steps)
    target = target or criterion.addrop_target
    sample = example(loaded, split, index)
    records = attention_maps(loaded, sample, modules, settings, target, seed)
    namer = symbol_namer(data)
    tokens = [axis_tokens(loaded.task, sample, r["kind"], namer) for r in records]
    panels = to_json(records, chosen_heads, tokens)
    title = (f"{Path(path).name}: {split} #{index}, {settings.attribution.upper()}"
             f" ({target} target), p={settings.p:g} q={settings.q:g} {settings.strategy}, "
             f"seed {seed}")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_maps(panels, out, title)
    json_path = Path(json_path) if json_path else out.with_suffix(".json")
    json_path.write_text(json.dumps({
        "checkpoint": relative_path(path), "data": relative_path(data), "split": split,
        "index": index, "target": target, "seed": seed,
        "settings": vars(settings), "maps": panels}) + "\n", encoding="utf-8")
    return json_path

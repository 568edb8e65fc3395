"""Per-epoch numbers from a ``fairseq-train --log-format json`` log.

fairseq writes one JSON object per line behind ``| INFO | TAG |``: ``train`` for the
end-of-epoch training summary, ``valid`` for the dev split, and ``trainset`` for the unmasked
evaluation of the training split (``--valid-subset valid,trainset``, see
runner.data_with_trainset). A spec's ``report_split`` (e.g. the official GLUE dev split playing
the test set) is validated every epoch too, under its own tag. A run resumed from
``checkpoint_last.pt`` appends to the same log; a later record of an epoch replaces the earlier
one.
"""

from __future__ import annotations

import json
import math
import re

_LINE = re.compile(r"\| INFO \| (?P<tag>[\w.]+) \| (?P<payload>\{.*\})\s*$")


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _stats(payload: dict, prefix: str) -> dict:
    return {
        key[len(prefix) + 1 :]: _number(value)
        for key, value in payload.items()
        if key.startswith(prefix + "_")
    }


def parse_epochs(text: str, metric: str, report: str | None = None) -> list[dict]:
    """Epoch records, in epoch order, with the fields the comparison reports.

    ``train_loss`` is the logged training loss (in AD-DROP epochs: the masked second pass's);
    ``trainset_loss`` the training split evaluated without masks (only with valid-on-train);
    ``report_loss`` and ``report_metric`` the split named ``report`` (only when given).
    """
    epochs: dict[int, dict] = {}
    for line in text.splitlines():
        match = _LINE.search(line)
        if not match:
            continue
        try:
            payload = json.loads(match["payload"])
        except json.JSONDecodeError:
            continue
        tag, epoch = match["tag"], payload.get("epoch")
        if not isinstance(epoch, int) or tag not in ("train", "valid", "trainset", report):
            continue
        record = epochs.setdefault(epoch, {"epoch": epoch})
        if tag == "valid":
            stats = _stats(payload, "valid")
            record.update(
                valid_loss=stats.get("loss"),
                valid_metric=stats.get(metric),
                num_updates=stats.get("num_updates"),
            )
        elif tag == "train":
            stats = _stats(payload, "train")
            record.update(
                train_loss=stats.get("loss"),
                addrop=stats.get("addrop", 0.0),
                addrop_drop=stats.get("addrop_drop", 0.0),
                train_wall=stats.get("wall"),
            )
        elif tag == "trainset":
            stats = _stats(payload, "trainset")
            record.update(trainset_loss=stats.get("loss"), trainset_metric=stats.get(metric))
        else:
            stats = _stats(payload, report)
            record.update(report_loss=stats.get("loss"), report_metric=stats.get(metric))
    return [epochs[e] for e in sorted(epochs)]


def best_epoch(epochs: list[dict], maximize: bool) -> dict | None:
    """The epoch fairseq's checkpoint_best.pt holds: the best dev metric, the later epoch on a tie
    (fairseq replaces checkpoint_best.pt when the metric is >= the best, or <= when minimising)."""
    best = None
    for record in epochs:
        value = record.get("valid_metric")
        if value is None:
            continue
        if best is None or (
            value >= best["valid_metric"] if maximize else value <= best["valid_metric"]
        ):
            best = record
    return best

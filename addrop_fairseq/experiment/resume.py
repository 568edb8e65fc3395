"""Whether a run the comparison restarted in its directory continued its training or began again.

fairseq-train logs ``Loaded checkpoint PATH (epoch E @ U updates)`` when it starts from a file,
and ``num_updates`` in every JSON line of ``--log-format json``. A restarted run continued when
it loaded the ``checkpoint_last.pt`` that was there (the same number of updates) and its first
logged update comes after that checkpoint; a run started with ``--restore-file MODEL.pt
--reset-*`` loads MODEL.pt at 0 updates instead and trains from the pretrained weights again.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

RESTART_FROM_PRETRAINED = ("--reset-optimizer", "--reset-dataloader", "--reset-meters")


def same_start(options) -> list[str]:
    """``options`` with ``--finetune-from-model X`` written as ``--restore-file X --reset-optimizer
    --reset-dataloader --reset-meters``: on a run's first launch fairseq does exactly the same with
    both (loads X, fresh optimizer, scheduler, meters and data iterator; fairseq's
    checkpoint_utils.load_checkpoint), so records made with the older form keep their
    fingerprint. Only a later launch differs: the first form resumes checkpoint_last.pt."""
    options = list(options)
    out = []
    index = 0
    while index < len(options):
        option = options[index]
        if option == "--finetune-from-model" and index + 1 < len(options):
            out += ["--restore-file", options[index + 1], *RESTART_FROM_PRETRAINED]
            index += 2
            continue
        if option.startswith("--finetune-from-model="):
            out += ["--restore-file", option.split("=", 1)[1], *RESTART_FROM_PRETRAINED]
        else:
            out.append(option)
        index += 1
    return out


def checkpoint_updates(path: Path) -> int | None:
    """The number of updates a fairseq checkpoint holds (None when it cannot be read)."""
    import torch

    try:  # mmap: the tensors are mapped, not read
        state = torch.load(path, map_location="cpu", mmap=True)
        return int(state["optimizer_history"][-1]["num_updates"])
    except Exception:
        return None


_LOADED = re.compile(r"Loaded checkpoint (?P<path>\S+) \(epoch (?P<epoch>\d+) @ (?P<updates>\d+) updates\)")
_PAYLOAD = re.compile(r"\| INFO \| [\w.]+ \| (\{.*\})\s*$")


def logged_updates(text: str) -> list[int]:
    """Every ``num_updates`` of the JSON log lines in ``text``, in order."""
    found = []
    for line in text.splitlines():
        match = _PAYLOAD.search(line)
        if not match:
            continue
        try:
            payload = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        for key, value in payload.items():
            if key == "num_updates" or key.endswith("_num_updates"):
                try:
                    found.append(int(float(value)))
                except (TypeError, ValueError):
                    pass
                break
    return found


def continuation(before: str, after: str, checkpoint_updates_before: int | None) -> dict:
    """What a restarted attempt did: ``before`` is the log of the earlier attempts, ``after`` this
    attempt's, ``checkpoint_updates_before`` the updates in checkpoint_last.pt when it started."""
    loaded = _LOADED.search(after)
    earlier, now = logged_updates(before), logged_updates(after)
    result = {
        "checkpoint_updates": checkpoint_updates_before,
        "last_logged_update_before": earlier[-1] if earlier else None,
        "loaded": Path(loaded["path"]).name if loaded else None,
        "loaded_updates": int(loaded["updates"]) if loaded else None,
        "first_logged_update_after": now[0] if now else None,
    }
    result["continued"] = bool(
        checkpoint_updates_before is not None
        and result["loaded_updates"] == checkpoint_updates_before
        and (not now or now[0] > checkpoint_updates_before)
    )
    return result


def describe(result: dict) -> str:
    if result["continued"]:
        return (f"resumed at update {result['loaded_updates']} "
                f"(first update logged after: {result['first_logged_update_after']})")
    return (f"did NOT continue its checkpoint_last.pt ({result['checkpoint_updates']} updates): "
            f"loaded {result['loaded']} at {result['loaded_updates']} updates, first update logged "
            f"{result['first_logged_update_after']}; it trained again from the start (a spec with "
            "--restore-file MODEL --reset-*? use --finetune-from-model MODEL)")

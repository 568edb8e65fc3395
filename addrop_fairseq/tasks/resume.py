"""What a killed run needs to resume where it stopped, beyond what fairseq itself saves.

Starting from a pretrained model: fairseq loads ``--restore-file X`` (any X but the default
``checkpoint_last.pt``) at every launch, so a fine-tuning run started with ``--restore-file
MODEL.pt --reset-optimizer --reset-dataloader --reset-meters`` and started again after a kill
trains from MODEL.pt from epoch 1, and overwrites the ``checkpoint_last.pt`` it could have
resumed. ``--finetune-from-model MODEL.pt`` loads MODEL.pt (with a fresh optimizer, scheduler,
meters and data iterator) only while ``--save-dir`` has no ``checkpoint_last.pt``, and resumes it
afterwards. The plugin wraps fairseq's ``checkpoint_utils.load_checkpoint`` to say so in one line
when the trap is set, and to turn fairseq's own refusals of mixing the two into one line.

Early stopping: fairseq keeps ``--patience``'s count and best value in attributes of the function
``fairseq_cli.train.should_stop_early``, which no checkpoint holds; a resumed run counted from zero
again and trained longer than the run it resumed. The AD-DROP tasks save both with their
checkpoint state (``get_checkpoint_dict``) and put them back on resume.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Optional

from ..errors import AddropError

logger = logging.getLogger(__name__)

DEFAULT_RESTORE = "checkpoint_last.pt"
RESETS = ("reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def restart_warning(cfg, suffix: str = "") -> Optional[str]:
    """The one-line warning for a run that would start over from ``--restore-file`` while its
    ``--save-dir`` holds a ``checkpoint_last.pt`` it could resume (None when it would not)."""
    restore = getattr(cfg, "restore_file", DEFAULT_RESTORE)
    resets = [_flag(name) for name in RESETS if getattr(cfg, name, False)]
    if restore == DEFAULT_RESTORE or not resets:
        return None
    last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
    if not os.path.isfile(last):
        return None
    restored = restore.replace(".pt", suffix + ".pt") if suffix else restore
    if os.path.isfile(restored) and os.path.samefile(restored, last):
        return None
    return (f"--restore-file {restore} with {' '.join(resets)} starts over from {restore} although "
            f"{last} exists, and overwrites it at the first save; to resume that run instead, "
            f"start it with --finetune-from-model {restore} (without --restore-file and "
            f"{' '.join(resets)}), which loads {restore} only while --save-dir has no "
            f"checkpoint_last.pt")


def mixed_options_error(cfg) -> Optional[str]:
    """fairseq refuses --finetune-from-model with --restore-file or --reset-*, printing its whole
    configuration; the same refusal in one line."""
    model = getattr(cfg, "finetune_from_model", None)
    if model is None:
        return None
    mixed = [_flag(name) for name in RESETS if getattr(cfg, name, False)]
    restore = getattr(cfg, "restore_file", DEFAULT_RESTORE)
    if restore != DEFAULT_RESTORE:
        mixed.insert(0, f"--restore-file {restore}")
    if not mixed:
        return None
    advice = ("drop the --reset-* options: it starts with a fresh optimizer, scheduler, meters "
              "and data iterator, and resumes --save-dir's checkpoint_last.pt once there is one")
    if restore != DEFAULT_RESTORE:
        advice = (f"to continue from {restore}, drop --finetune-from-model; to start from "
                  f"{model}, drop --restore-file") + ("" if len(mixed) == 1 else
                                                      "; and " + advice)
    return f"--finetune-from-model {model} cannot be combined with {', '.join(mixed)}: {advice}"


def with_restart_checks(load_checkpoint):
    """Wraps fairseq's ``checkpoint_utils.load_checkpoint(cfg, trainer, ...)``."""
    @functools.wraps(load_checkpoint)
    def checked_load_checkpoint(cfg, trainer, *args, **kwargs):
        error = mixed_options_error(cfg)
        if error:
            raise AddropError(error)
        warning = restart_warning(cfg, getattr(trainer, "checkpoint_suffix", "") or "")
        if warning:
            logger.warning(warning)
        return load_checkpoint(cfg, trainer, *args, **kwargs)

    checked_load_checkpoint.addrop_wrapped = True
    return checked_load_checkpoint


def check_restarts() -> None:
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.load_checkpoint, "addrop_wrapped", False):
        checkpoint_utils.load_checkpoint = with_restart_checks(checkpoint_utils.load_checkpoint)


def _early_stopping_functions() -> list:
    """fairseq-train's ``should_stop_early``: in ``fairseq_cli.train``, or in ``__main__`` when
    it runs as ``python -m fairseq_cli.train``."""
    found = []
    for name in ("__main__", "fairseq_cli.train"):
        function = getattr(sys.modules.get(name), "should_stop_early", None)
        code = getattr(function, "__code__", None)
        if code is not None and code.co_filename.replace(os.sep, "/").endswith("fairseq_cli/train.py"):
            if function not in found:
                found.append(function)
    return found


def early_stopping_state() -> dict:
    """--patience's running state: the best validation value and the validations since."""
    for function in _early_stopping_functions():
        if hasattr(function, "best"):
            best = None if function.best is None else float(function.best)
            return {"best": best, "num_runs": int(getattr(function, "num_runs", 0))}
    return {}


def restore_early_stopping(state: dict) -> None:
    if "best" not in state:
        return
    for function in _early_stopping_functions():
        function.best = state["best"]
        function.num_runs = state.get("num_runs", 0)

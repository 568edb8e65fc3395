"""Cross-tuning (paper section 2.4, Algorithm 1): when is AD-DROP on?"""
from __future__ import annotations

SCHEDULES = ("cross", "always", "off", "updates")


def addrop_active(schedule: str, epoch: int, num_updates: int, every: int = 1000) -> bool:
    """The phase is a pure function of (epoch, update), so a resumed run keeps its schedule.

    cross: odd epochs plain, even epochs AD-DROP (epochs count from 1, as in fairseq).
    updates: the same alternation in blocks of ``every`` updates, for corpora where one epoch
    is too long to wait for (updates [0, every) plain, [every, 2 * every) AD-DROP, ...).
    """
    if schedule == "cross":
        return epoch % 2 == 0
    if schedule == "always":
        return True
    if schedule == "off":
        return False
    if schedule == "updates":
        return (num_updates // every) % 2 == 1
    raise ValueError(f"--addrop-schedule={schedule!r}: expected one of {SCHEDULES}")

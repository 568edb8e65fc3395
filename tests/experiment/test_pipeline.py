"""The quick start's machinery: a stage's log and failure report, and the epoch lines read from
fairseq's output in both of its line formats (fairseq-train's and hydra's)."""
import sys

import pytest

from addrop_fairseq.experiment.pipeline import EpochReader, StageFailed, duration, run_stage

FAIRSEQ = """\
2026-11-29 18:15:19 | INFO | train_inner | epoch 001:      1 / 31 loss=12.779, addrop=0, addrop_drop=0, num_updates=1
2026-11-29 18:15:27 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 10.472 | nll_loss 10.3 | num_updates 31
2026-11-29 18:15:27 | INFO | train | epoch 001 | loss 11.674 | nll_loss 11.6 | addrop 0 | addrop_drop 0 | num_updates 31
"""
HYDRA = """\
[2026-11-29 18:14:27,057][valid][INFO] - epoch 002 | valid on 'valid' subset | loss 9.47 | num_updates 62
[2026-11-29 18:14:27,060][valid1][INFO] - epoch 002 | valid on 'valid1' subset | loss 9.9 | num_updates 62
[2026-11-29 18:14:27,146][train][INFO] - epoch 002 | loss 9.809 | addrop 1 | addrop_drop 0.096 | num_updates 62
"""


def test_epochs_are_read_from_both_line_formats():
    seen = []
    reader = EpochReader(seen.append)
    for line in (FAIRSEQ + HYDRA).splitlines(keepends=True):
        reader(line)
    assert [e.number for e in seen] == [1, 2]
    assert seen[0].train["loss"] == "11.674" and seen[0].valid["loss"] == "10.472"
    assert seen[1].train["addrop"] == "1" and seen[1].train["addrop_drop"] == "0.096"
    assert seen[1].valid["loss"] == "9.47"  # the first validation subset's
    assert all(e.seconds >= 0 for e in seen)


def test_duration():
    assert (duration(9.4), duration(61), duration(220)) == ("9 s", "1 min 01 s", "3 min 40 s")

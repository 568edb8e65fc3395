"""Checkpoints load under torch's weights_only protection, with only fairseq's classes allowed."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

import addrop_fairseq  # noqa: F401  (installs the allow-list, as --user-dir does)
from conftest import run_cli
from test_resume import tiny_translation_data, train_args


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoint")
    data = tiny_translation_data(root / "data", pairs=40, valid=8)
    run_cli("fairseq_cli.train", *train_args(data, root / "checkpoints", "--max-update", "2",
                                              "--addrop-schedule", "always"))
    return root / "checkpoints" / "checkpoint_last.pt"


class RunsACommand:
    """What a hostile checkpoint carries: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload, named", [("os.system", "posix.system"),
                                            ("unlisted class", "PickleBuffer")])
def test_a_pickle_carrying_another_global_is_refused(tmp_path, payload, named):
    from fairseq import checkpoint_utils

    marker = tmp_path / "command-ran"
    extra = RunsACommand(marker) if payload == "os.system" else pickle.PickleBuffer  # any class
    path = tmp_path / "hostile.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "cfg": None, "extra_state": {"x": extra}}, path)
    for load in (torch.load, checkpoint_utils.load_checkpoint_to_cpu):
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed") as refused:
            load(str(path))
        assert named in str(refused.value)
    assert not marker.exists(), "unpickling ran the command"
    if payload == "os.system":
        # the payload is live: an unprotected load (harmlessly) runs it
        torch.load(path, weights_only=False)
        assert marker.exists()

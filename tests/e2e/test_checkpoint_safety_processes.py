"""The tests of package/test_checkpoint_safety.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_checkpoint_safety import (  # noqa: F401
    checkpoint,
    pytest,
    subprocess,
    sys,
    torch,
)


@pytest.mark.slow
def test_fairseq_checkpoint_loads_with_weights_only_default(checkpoint):
    from fairseq import checkpoint_utils

    state = torch.load(checkpoint)  # torch >= 2.6: weights_only=True unless told otherwise
    assert state["optimizer_history"][-1]["num_updates"] == 2
    assert state["cfg"]["model"].arch == "addrop_transformer"
    # fairseq's own loaders (torch.load without weights_only) through to a built model
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    loaded = models[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state["model"].items())


@pytest.mark.slow
def test_without_the_allow_list_torch_refuses_fairseq_checkpoints(checkpoint):
    # the protection is torch's, not ours: a process without the plugin cannot read the file
    result = subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(checkpoint)!r})"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Weights only load failed" in result.stderr

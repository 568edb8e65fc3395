"""Numerical faults: a non-finite attribution never reaches the masks.

fp16 overflow (or any NaN/inf in the attribution gradients) makes the candidate region
meaningless; the batch then takes a plain step, and the log counts it as ``addrop_fallback``.
The fp16/AMP loss scale is applied to the attribution target (GA is linear in it and the region
is a ranking, so a power-of-two scale changes nothing but the underflow).
"""
import math
import os
import re
import textwrap
import types

import pytest
import torch

import addrop_fairseq.criterions.two_pass as two_pass
import addrop_fairseq.core.step as step_module
from addrop_fairseq.criterions.two_pass import Phase
from addrop_fairseq.core.mask import addrop_mask
from addrop_fairseq.tasks.cross_tuning import loss_scale, step_generator
from conftest import PLUGIN, run_cli
from test_resume import TINY_TRANSFORMER, tiny_translation_data, train_args


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_translation_data(tmp_path_factory.mktemp("faults"))


def build(data, *extra):
    """task, model, criterion and one training batch, as fairseq-train would build them."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(data), "--user-dir", PLUGIN, "--task", "addrop_translation", *TINY_TRANSFORMER,
        "--dropout", "0", "--criterion", "addrop_label_smoothed_cross_entropy",
        "--addrop-schedule", "always", "--optimizer", "adam", "--lr", "1e-3", "--cpu",
        "--max-tokens", "400", *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    batch = next(iter(task.get_batch_iterator(task.dataset("train"), max_tokens=400)
                      .next_epoch_itr(shuffle=False)))
    return types.SimpleNamespace(cfg=cfg, task=task, model=model, criterion=criterion, batch=batch)


@pytest.fixture(scope="module")
def translation(data):
    return build(data)


def forward(setup, phase):
    setup.model.train()
    setup.criterion.addrop_phase = phase
    try:
        loss, _, log = setup.criterion(setup.model, setup.batch)
    finally:
        setup.criterion.addrop_phase = None
    return loss, log


def active(seed=0, scale=1.0):
    return Phase(True, step_generator(seed, 0, 0, 0, torch.device("cpu")), scale)


def inject(criterion, monkeypatch, factor):
    """Multiplies the attribution target by ``factor`` (inf or nan: every gradient non-finite)."""
    target = type(criterion).attribution_target

    def faulty(model, sample, first):
        clean = target(criterion, model, sample, first)
        return lambda output: clean(output) * factor

    monkeypatch.setattr(criterion, "attribution_target", faulty)


@pytest.mark.parametrize("factor", [math.inf, -math.inf, math.nan])
def test_non_finite_attribution_takes_a_plain_step(translation, monkeypatch, factor):
    masked_loss, masked_log = forward(translation, active())
    plain_loss, _ = forward(translation, Phase(False))
    # without a fault, the masks change the loss: the fallback comparison below is not vacuous
    assert masked_log["addrop_fallback"] == 0 and masked_log["addrop_dropped"] > 0
    assert masked_loss.item() != plain_loss.item()

    inject(translation.criterion, monkeypatch, factor)
    masks = []
    monkeypatch.setattr(step_module, "addrop_mask", lambda *a, **k: masks.append(1) or addrop_mask(*a, **k))
    loss, log = forward(translation, active())
    assert log["addrop_fallback"] == 1
    assert log["addrop_active"] == 1 and int(log["addrop_dropped"]) == 0
    assert not masks, "a mask was drawn from non-finite scores"
    assert torch.isfinite(loss) and loss.item() == plain_loss.item()
    translation.model.zero_grad()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in translation.model.parameters() if p.grad is not None)


def test_power_of_two_loss_scale_leaves_the_masks_unchanged(translation, monkeypatch):
    drawn = []

    def recording(*args, **kwargs):
        drawn.append(addrop_mask(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(step_module, "addrop_mask", recording)
    unscaled, _ = forward(translation, active(scale=1.0))
    reference, drawn[:] = list(drawn), []
    scaled, log = forward(translation, active(scale=2.0**7))
    assert log["addrop_fallback"] == 0
    assert len(drawn) == len(reference) > 0
    assert all(torch.equal(a, b) for a, b in zip(drawn, reference))
    assert scaled.item() == unscaled.item()


def test_fp16_overflow_in_attribution_falls_back(data):
    # a half-precision model on CPU: its attribution gradients live in fp16, as on a GPU with --fp16
    half = build(data)
    half.model.half()
    ok_loss, ok_log = forward(half, active(scale=128.0))  # fairseq's --fp16-init-scale
    assert ok_log["addrop_fallback"] == 0 and ok_log["addrop_dropped"] > 0
    assert torch.isfinite(ok_loss)
    # a loss scale far beyond fp16's range (65504) overflows the attribution gradients
    loss, log = forward(half, active(scale=2.0**40))
    assert log["addrop_fallback"] == 1 and int(log["addrop_dropped"]) == 0
    plain, _ = forward(half, Phase(False))
    assert torch.isfinite(loss) and loss.item() == plain.item()


def test_fairseq_fp16_and_amp_loss_scales_reach_the_attribution_target(data, monkeypatch):
    from fairseq import optim

    seen = []
    scaled_target = two_pass.scaled_target
    monkeypatch.setattr(two_pass, "scaled_target",
                        lambda target, scale: seen.append(scale) or scaled_target(target, scale))
    # fairseq's FP16Optimizer (unflattened: its flat buffer is CUDA-only) around a half model
    half = build(data, "--fp16", "--fp16-no-flatten-grads", "--fp16-init-scale", "256")
    half.model.half()
    fp16_optimizer = optim.FP16Optimizer.build_optimizer(half.cfg, list(half.model.parameters()))
    half.task.train_step(half.batch, half.model, half.criterion, fp16_optimizer, update_num=0)
    full = build(data)
    adam = optim.build_optimizer(full.cfg.optimizer, list(full.model.parameters()))
    full.task.train_step(full.batch, full.model, full.criterion, adam, update_num=0)
    assert seen == [256.0, 1.0]
    # fairseq's --amp keeps a torch GradScaler as ``optimizer.scaler``
    amp_like = types.SimpleNamespace(scaler=torch.amp.GradScaler("cpu", init_scale=512.0))
    assert loss_scale(amp_like) == 512.0


def test_non_finite_scores_never_give_a_nan_mask_or_an_empty_row():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 2, 5, 8])
    valid = (torch.arange(8) < lengths[:, None])[:, None, None, :].expand(4, 1, 8, 8)
    causal = torch.ones(8, 8, dtype=torch.bool).tril()
    for bad in (math.nan, math.inf, -math.inf):
        for fraction in (0.1, 0.5, 1.0):
            scores = torch.randn(4, 2, 8, 8, generator=generator)
            scores[torch.rand(scores.shape, generator=generator) < fraction] = bad
            for validity in (valid, valid & causal):
                drop = addrop_mask(scores, validity, p=1.0, q=1.0, generator=generator)
                assert drop.dtype == torch.bool
                kept = validity & ~drop
                assert kept.any(-1)[validity.expand_as(drop).any(-1)].all(), "a row lost every key"
                assert not (drop & ~validity).any()


# fairseq-train, with the attribution target made non-finite on every other update
FAULTY_TRAIN = textwrap.dedent("""
    import sys
    from fairseq_cli.train import cli_main  # first: it sets fairseq's log format
    from addrop_fairseq.criterions.addrop_label_smoothed_cross_entropy import (
        AddropLabelSmoothedCrossEntropyCriterion as Criterion)
    from addrop_fairseq.tasks.addrop_translation import AddropTranslationTask as Task

    current = {"update": 0}
    train_step, attribution_target = Task.train_step, Criterion.attribution_target

    def recording_train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        current["update"] = update_num
        return train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad)

    def overflowing_on_odd_updates(self, model, sample, first):
        target = attribution_target(self, model, sample, first)
        if current["update"] % 2 == 1:
            return lambda output: target(output) * float("inf")
        return target

    Task.train_step, Criterion.attribution_target = recording_train_step, overflowing_on_odd_updates
    sys.argv[0] = "fairseq-train"
    cli_main()
""")


# --- unreadable checkpoints --------------------------------------------------------------------

def test_empty_and_truncated_checkpoints_are_named_with_the_loadable_ones(tmp_path):
    from fairseq import checkpoint_utils

    from addrop_fairseq.errors import AddropError

    def good(updates):
        return {"model": {"w": torch.arange(6.0)}, "cfg": None, "extra_state": {},
                "optimizer_history": [{"num_updates": updates}]}

    torch.save(good(50), tmp_path / "checkpoint_1_50.pt")
    torch.save(good(10), tmp_path / "checkpoint1.pt")
    whole = (tmp_path / "checkpoint1.pt").read_bytes()
    (tmp_path / "checkpoint_last.pt").write_bytes(b"")
    (tmp_path / "checkpoint2.pt").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "checkpoint3.pt").write_bytes(whole[:-10])
    loadable = ("loadable checkpoints in {}: checkpoint_1_50.pt (50 updates), checkpoint1.pt "
                "(10 updates); use one with --path {}")
    for name, reason in (("checkpoint_last.pt", "is empty (0 bytes)"),
                         ("checkpoint2.pt", "is truncated or corrupt"),
                         ("checkpoint3.pt", "is truncated or corrupt")):
        with pytest.raises(AddropError) as error:
            checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / name))
        message = str(error.value)
        assert message.startswith(f"checkpoint {tmp_path / name} {reason}"), message
        assert loadable.format(tmp_path, tmp_path / "checkpoint_1_50.pt") in message, message
        assert "\n" not in message
    # an intact file that fairseq itself rejects keeps fairseq's error (this one lacks the
    # fields fairseq's upgrade reads), and a missing file its FileNotFoundError
    with pytest.raises(KeyError):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_1_50.pt"))
    with pytest.raises(FileNotFoundError):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "absent.pt"))

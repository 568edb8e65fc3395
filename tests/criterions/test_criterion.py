"""The two-pass criterion for translation, on a tiny model built in memory."""
import pytest
import torch
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

import addrop_fairseq.core.step as step_module
from addrop_fairseq.criterions.addrop_label_smoothed_cross_entropy import (
    AddropLabelSmoothedCrossEntropyConfig,
    AddropLabelSmoothedCrossEntropyCriterion,
)
from addrop_fairseq.criterions.two_pass import Phase
from conftest import tiny_batch, tiny_translation


def make_criterion(task, model, **options):
    cfg = AddropLabelSmoothedCrossEntropyConfig(label_smoothing=0.1, sentence_avg=False, **options)
    criterion = AddropLabelSmoothedCrossEntropyCriterion(task, cfg)
    criterion.bind_model(model)
    return criterion


def active(criterion, seed=0):
    criterion.addrop_phase = Phase(True, torch.Generator().manual_seed(seed))
    return criterion


def test_plain_phase_and_eval_are_exactly_the_parent_criterion():
    task, model = tiny_translation()
    sample = tiny_batch(task.source_dictionary)
    parent = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    expected, _, _ = parent(model, sample)
    criterion = make_criterion(task, model)
    criterion.addrop_phase = Phase(False)
    loss, _, log = criterion(model, sample)
    assert torch.equal(loss, expected) and log["addrop_active"] == 0
    model.eval()
    active(criterion, 0)
    loss, _, log = criterion(model, sample)
    assert torch.allclose(loss, parent(model, sample)[0]) and "addrop_active" not in log


def test_second_pass_differs_from_plain_only_through_the_masks():
    task, model = tiny_translation()
    sample = tiny_batch(task.source_dictionary)
    plain = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(model, sample)[0]
    # q so small that nothing is dropped: the two-pass loss is the plain loss
    nothing = active(make_criterion(task, model, addrop_q=1e-12))
    loss, _, log = nothing(model, sample)
    assert int(log["addrop_dropped"]) == 0
    assert (loss - plain).abs() < 1e-4
    something = active(make_criterion(task, model, addrop_p=0.5, addrop_q=0.5))
    loss, _, log = something(model, sample)
    assert int(log["addrop_dropped"]) > 0
    assert (loss - plain).abs() > 1e-4


def test_gradients_flow_from_the_second_pass_only(monkeypatch):
    task, model = tiny_translation()
    sample = tiny_batch(task.source_dictionary)
    criterion = active(make_criterion(task, model))
    calls = []
    real = step_module.gradient_attribution

    def counting(target, probs):
        calls.append(len(probs))
        grads = real(target, probs)
        # the attribution pass computes activation gradients only
        assert all(p.grad is None for p in model.parameters())
        return grads

    monkeypatch.setattr(step_module, "gradient_attribution", counting)
    loss, _, _ = criterion(model, sample)
    assert calls == [4], "one autograd.grad call for the 2 encoder + 2 decoder self-attentions"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_logs_report_the_realised_drop_fraction():
    task, model = tiny_translation()
    sample = tiny_batch(task.source_dictionary, batch=4, src_len=12, tgt_len=10)
    criterion = active(make_criterion(task, model, addrop_p=0.5, addrop_q=0.4))
    _, _, log = criterion(model, sample)
    fraction = float(log["addrop_dropped"]) / float(log["addrop_valid"])
    # about p * q of the valid positions (ceil and the small sample push it around)
    assert 0.1 < fraction < 0.35
    assert log["addrop_active"] == 1 and log["addrop_fallback"] == 0


@pytest.mark.parametrize("attribution", ["ga", "iga", "aa", "rd"])
@pytest.mark.parametrize("strategy", ["high", "low", "random"])
def test_every_attribution_and_strategy_trains(attribution, strategy):
    task, model = tiny_translation()
    sample = tiny_batch(task.source_dictionary)
    criterion = active(make_criterion(task, model, addrop_attribution=attribution,
                                      addrop_strategy=strategy, addrop_iga_steps=3))
    loss, _, log = criterion(model, sample)
    loss.backward()
    assert torch.isfinite(loss) and int(log["addrop_dropped"]) > 0


def test_pseudo_and_gold_targets_attribute_differently_when_the_first_pass_is_wrong():
    task, model = tiny_translation()
    model.train()
    sample = tiny_batch(task.source_dictionary)
    scores = {}
    for target in ("pseudo", "gold"):
        criterion = make_criterion(task, model, addrop_target=target)
        first = model(**sample["net_input"])
        wrong = first[0].argmax(-1).ne(sample["target"]) & sample["target"].ne(1)
        assert wrong.any(), "an untrained model should mispredict some tokens"
        scores[target] = criterion.attribution_target(model, sample, first)(first)
    assert not torch.allclose(scores["pseudo"], scores["gold"])
    # the pseudo target is the log-probability of the argmax: never below the gold one
    assert scores["pseudo"] > scores["gold"]


def test_layer_and_module_selection():
    task, model = tiny_translation(encoder_layers=3)
    criterion = make_criterion(task, model, addrop_layers="0,2", addrop_modules="encoder_self")
    assert [(m.kind, m.layer) for m in criterion._masked] == [("encoder_self", 0), ("encoder_self", 2)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribution_sign_dropping_high_hurts_and_dropping_low_helps(seed):
    """Paper section 2.2 on one batch: with the gold target, removing the keys whose weight raises
    log p(gold) most raises the loss; removing those that lower it most reduces the loss."""
    task, model = tiny_translation(seed=seed, dropout=0.0, attention_dropout=0.0)
    sample = tiny_batch(task.source_dictionary, batch=4, src_len=12, tgt_len=10, seed=seed)
    plain = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(model, sample)[2]["nll_loss"]
    nll = {}
    for strategy in ("high", "low"):
        # q = 1: every candidate is dropped, so the comparison carries no sampling noise
        criterion = active(make_criterion(task, model, addrop_p=0.2, addrop_q=1.0,
                                          addrop_target="gold", addrop_strategy=strategy,
                                          addrop_layers="0", addrop_modules="encoder_self"))
        nll[strategy] = float(criterion(model, sample)[2]["nll_loss"])
    assert nll["low"] < float(plain) < nll["high"]

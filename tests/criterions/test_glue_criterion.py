"""The addrop_sentence_prediction task and criterion, in-process on tiny RoBERTa models."""
import contextlib

import pytest
import torch

from addrop_fairseq.modules.attention import AddropMultiheadAttention, attention_mode
from addrop_fairseq.criterions.two_pass import Phase
from addrop_fairseq.errors import AddropError
from test_glue_data import make_tokenizer, prepare_glue, write_mrpc, write_stsb

TINY = ["--arch", "roberta_base", "--encoder-layers", "2", "--encoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--max-positions", "64",
        "--dropout", "0", "--attention-dropout", "0", "--pooler-dropout", "0"]


def prepared(tmp_path, task="mrpc", sizes=(24, 12, 0)):
    writer = write_stsb if task == "stsb" else write_mrpc
    raw = writer(tmp_path / f"{task}_raw", sizes=sizes)
    (raw / "test.tsv").unlink()
    dest = tmp_path / f"{task}_bin"
    prepare_glue.main(["--task", task, "--input", str(raw), "--dest", str(dest),
                       "--hf-tokenizer", str(make_tokenizer(tmp_path / "tok"))])
    return dest


def build(data, *extra):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import addrop_fairseq

    plugin = addrop_fairseq.__path__[0]
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", plugin, "--task", "addrop_sentence_prediction",
        "--criterion", "addrop_sentence_prediction", "--init-token", "0",
        "--separator-token", "2", "--cpu", "--seed", "1", *TINY, *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def first_batch(task, split="valid", size=8):
    task.load_dataset(split)
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in range(size)])


def head(cfg):
    return cfg.criterion.classification_head_name


def test_task_adopts_the_encoder_self_attention_and_fills_num_classes(tmp_path):
    cfg, task, model, criterion = build(prepared(tmp_path))
    assert task.cfg.num_classes == 2 and task.glue.name == "mrpc"
    layers = model.encoder.sentence_encoder.layers
    assert [type(layer.self_attn) for layer in layers] == [AddropMultiheadAttention] * 2
    assert [(m.kind, m.layer) for m in criterion._masked] == [("encoder_self", 0), ("encoder_self", 1)]
    _, _, _, first_only = build(tmp_path / "mrpc_bin", "--addrop-layers", "0")
    assert [m.layer for m in first_only._masked] == [0]
    with pytest.raises(AddropError, match="layer 2 is out of range for encoder_self"):
        build(tmp_path / "mrpc_bin", "--addrop-layers", "2")


def test_attention_is_unchanged_when_ad_drop_is_off(tmp_path):
    """The adopted modules are fairseq's: same state dict, same outputs as plain RoBERTa."""
    from fairseq.modules import MultiheadAttention

    cfg, task, model, _ = build(prepared(tmp_path))
    sample = first_batch(task)
    model.train()
    torch.manual_seed(0)
    ours = model(**sample["net_input"], features_only=True, classification_head_name=head(cfg))[0]
    for layer in model.encoder.sentence_encoder.layers:
        layer.self_attn.__class__ = MultiheadAttention
    plain = model(**sample["net_input"], features_only=True, classification_head_name=head(cfg))[0]
    assert torch.allclose(ours, plain, atol=1e-6)


def attribution(criterion, model, sample, cfg, target):
    """Gradient of the criterion's attribution target w.r.t. each masked layer's attention."""
    criterion.addrop_target = target
    modules = criterion._masked
    with torch.enable_grad(), attention_mode(modules, "record"):
        output = model(**sample["net_input"], features_only=True, classification_head_name=head(cfg))
    probs = [m.recorded for m in modules]
    value_of = criterion.attribution_target(model, sample, output)
    value = value_of(output)
    return value, output, torch.autograd.grad(value, probs)


def test_pseudo_label_attribution_differs_from_gold_where_the_first_pass_is_wrong(tmp_path):
    cfg, task, model, criterion = build(prepared(tmp_path))
    model.train()  # AD-DROP's attribution pass runs in training mode
    sample = first_batch(task)
    with torch.no_grad():
        logits = model(**sample["net_input"], features_only=True,
                       classification_head_name=head(cfg))[0]
    predicted = logits.argmax(-1)
    wrong = torch.arange(len(predicted)) % 2 == 0
    sample["target"] = torch.where(wrong, 1 - predicted, predicted)

    value, output, pseudo = attribution(criterion, model, sample, cfg, "pseudo")
    assert torch.allclose(value, output[0].gather(1, predicted[:, None]).sum(), atol=1e-6)
    assert torch.allclose(value, logits[torch.arange(len(predicted)), predicted].sum(), atol=1e-5)
    _, _, gold = attribution(criterion, model, sample, cfg, "gold")
    for p, g in zip(pseudo, gold):  # [B, H, T, S]
        assert p[~wrong].abs().max() > 0
        assert torch.allclose(p[~wrong], g[~wrong], atol=1e-7)  # right: the same target
        assert (p[wrong] - g[wrong]).abs().max() > 1e-4 * p[wrong].abs().max()


def test_regression_attribution_is_the_negative_squared_error_against_the_gold_score(tmp_path):
    cfg, task, model, criterion = build(prepared(tmp_path, "stsb"), "--regression-target")
    assert task.cfg.num_classes == 1
    model.train()
    sample = first_batch(task)
    value, output, grads = attribution(criterion, model, sample, cfg, "pseudo")
    expected = -((output[0].view(-1) - sample["target"].view(-1)) ** 2).sum()
    assert torch.allclose(value, expected, atol=1e-5)
    assert all(g.abs().max() > 0 for g in grads)  # a pseudo score would give zero gradient
    gold_value, _, gold_grads = attribution(criterion, model, sample, cfg, "gold")
    assert torch.allclose(value, gold_value) and all(torch.equal(a, b) for a, b in zip(grads, gold_grads))


@contextlib.contextmanager
def drops_seen(criterion):
    """Yields a list that collects (layer, dropped positions) for every mask AD-DROP applies."""
    seen = []

    def count_drops(module, _args):
        if module.addrop_mode == "apply" and module.drop_fn is not None:
            make_drop = module.drop_fn

            def counted(valid):
                drop = make_drop(valid)
                seen.append((module.layer, int(drop.sum())))
                return drop

            module.drop_fn = counted

    handles = [m.register_forward_pre_hook(count_drops) for m in criterion._masked]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def count_masks(task, model, criterion, sample):
    """Runs one training step; returns (logging output, [(layer, dropped positions)])."""
    from fairseq.optim.sgd import SGD
    from omegaconf import OmegaConf

    optimizer = SGD(OmegaConf.create({"lr": [0.0], "momentum": 0.0, "weight_decay": 0.0}),
                    list(model.parameters()))
    with drops_seen(criterion) as seen:
        _, _, log = task.train_step(sample, model, criterion, optimizer, update_num=0)
    return log, seen


@pytest.mark.parametrize("layers, expected", [("all", [0, 1]), ("0", [0])])
def test_training_masks_only_the_chosen_layers_and_validation_masks_nothing(tmp_path, layers, expected):
    cfg, task, model, criterion = build(prepared(tmp_path), "--addrop-schedule", "always",
                                        "--addrop-layers", layers, "--addrop-p", "0.5",
                                        "--addrop-q", "0.5")
    sample = first_batch(task)
    model.train()
    log, seen = count_masks(task, model, criterion, sample)
    assert [layer for layer, _ in seen] == expected
    assert all(dropped > 0 for _, dropped in seen)
    tokens = sample["net_input"]["src_tokens"]
    heads, length = 2, tokens.size(1)
    real = int(tokens.ne(task.source_dictionary.pad()).sum())
    assert int(log["addrop_valid"]) == len(expected) * heads * length * real
    assert log["addrop_active"] == 1 and "glue_pred" not in log

    model.eval()  # even inside an AD-DROP phase, an eval-mode forward is a plain one
    criterion.addrop_phase = Phase(True, torch.Generator().manual_seed(0))
    with torch.no_grad(), drops_seen(criterion) as seen_in_eval:
        _, _, eval_log = criterion(model, sample)
    criterion.addrop_phase = None
    assert seen_in_eval == [] and "addrop_active" not in eval_log
    logits = model(**sample["net_input"], features_only=True, classification_head_name=head(cfg))[0]
    assert torch.equal(eval_log["glue_pred"], logits.argmax(-1))
    assert torch.equal(eval_log["glue_target"], sample["target"].view(-1))


def test_cross_tuning_alternates_plain_and_ad_drop_epochs(tmp_path):
    _, task, model, criterion = build(prepared(tmp_path))
    sample = first_batch(task)
    model.train()
    for epoch, active in ((1, 0), (2, 1), (3, 0)):
        task.begin_epoch(epoch, model)
        log, seen = count_masks(task, model, criterion, sample)
        assert log["addrop_active"] == active and bool(seen) == bool(active)


def test_task_options_are_checked_against_the_data(tmp_path):
    mrpc = prepared(tmp_path)
    with pytest.raises(AddropError, match="--glue-task cola: the data in .* was prepared for mrpc"):
        build(mrpc, "--glue-task", "cola")
    with pytest.raises(AddropError, match="--num-classes 3: MRPC has 2"):
        build(mrpc, "--num-classes", "3")
    with pytest.raises(AddropError, match="stsb is a regression task: add --regression-target"):
        build(prepared(tmp_path, "stsb"))
    with pytest.raises(AddropError, match="mrpc is a classification task: remove --regression-target"):
        build(mrpc, "--regression-target")
    # data from elsewhere (no glue.json): --glue-task names the metrics, labels are checked
    (mrpc / "glue.json").unlink()
    _, task, _, _ = build(mrpc, "--num-classes", "2")
    assert task.glue is None and task.metric_names == ("accuracy",)
    (mrpc / "label" / "dict.txt").write_text("1 5\n0 7\n")  # fairseq-preprocess: by frequency
    _, task, _, _ = build(mrpc, "--glue-task", "mrpc")
    assert task.positive_class == 0 and task.metric_names == ("accuracy", "f1", "acc_and_f1")
    (mrpc / "label" / "dict.txt").write_text("yes 5\nno 7\n")
    with pytest.raises(AddropError, match="label 'yes' in .* is not a MRPC label"):
        build(mrpc, "--glue-task", "mrpc")

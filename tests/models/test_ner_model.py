"""The taggers, the tagging criterion and the validation metric, built as fairseq-train builds them."""
import argparse

import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from fairseq.logging import metrics
from seqeval.metrics import f1_score

import addrop_fairseq.core.step as step_module
from addrop_fairseq.modules.attention import AddropMultiheadAttention, attention_mode
from addrop_fairseq.criterions.two_pass import Phase
from addrop_fairseq.errors import AddropError
from addrop_fairseq.data.ner import IGNORE_INDEX, read_conll, word_starts
from test_ner_fixtures import batch, prepared_corpus, roberta_checkpoint, tagging_setup

ROBERTA_SIZE = ["--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim",
                "64", "--encoder-attention-heads", "4", "--max-positions", "128"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepared_corpus(tmp_path_factory.mktemp("ner"))


@pytest.fixture
def tagger(data):
    torch.manual_seed(0)
    return tagging_setup(data, "--addrop-p", "0.5", "--addrop-q", "0.5")


def padded_batch(task):
    """Sentences of different lengths, so that some keys are padding."""
    dataset = task.dataset("train")
    by_length = sorted(range(len(dataset)), key=lambda i: dataset.size(i))
    return batch(task, "train", [by_length[0], by_length[len(by_length) // 2], by_length[-1]])


def capture_masked_passes(monkeypatch, model):
    """Every drop mask AD-DROP samples, and each masked attention's input and output in that pass."""
    drops, passes = [], {}
    real = step_module.addrop_mask

    def recording(*args, **kwargs):
        drop = real(*args, **kwargs)
        drops.append(drop)
        return drop

    monkeypatch.setattr(step_module, "addrop_mask", recording)
    for module in model.modules():
        if isinstance(module, AddropMultiheadAttention):
            def tap(module, args, kwargs, output):
                if module.addrop_mode == "apply" and "query" in kwargs:  # the encoder's call
                    passes[module.layer] = (kwargs["query"].detach(), output[0].detach())
            module.register_forward_hook(tap, with_kwargs=True)
    return drops, passes


def attention_scores(module, x):
    """[B, H, T, S] scaled dot products of a self-attention module, computed independently."""
    length, bsz, _ = x.shape
    shape = (length, bsz, module.num_heads, module.head_dim)
    q = (module.q_proj(x) * module.scaling).view(shape).permute(1, 2, 0, 3)
    k = module.k_proj(x).view(shape).permute(1, 2, 0, 3)
    return q @ k.transpose(-1, -2)


def test_dropped_positions_get_zero_probability_and_padded_keys_stay_masked(tagger, monkeypatch):
    """The official code added the 0/1 keep-mask to ELECTRA's scores: nothing was dropped and
    padding was never masked. Here a dropped key and a padded key get probability exactly 0, in
    the explicit path that materialises the probabilities and in the fused path training uses."""
    task, model, criterion = tagger
    sample = padded_batch(task)
    padded = sample["net_input"]["src_tokens"].eq(task.source_dictionary.pad())
    assert padded.any()
    drops, passes = capture_masked_passes(monkeypatch, model)
    model.train()
    criterion.addrop_phase = Phase(True, torch.Generator().manual_seed(0))
    criterion(model, sample)
    modules = [m for m in model.modules() if isinstance(m, AddropMultiheadAttention)]
    assert len(drops) == len(passes) == len(modules) == 2  # both layers masked
    for module, drop in zip(modules, drops):
        x, fused_output = passes[module.layer]
        b, h, t, s = drop.shape
        pad_keys = padded[:, None, None, :].expand_as(drop)
        real_queries = ~padded[:, None, :, None].expand_as(drop)
        assert drop.any() and not (drop & pad_keys).any()
        with torch.no_grad(), attention_mode([module], "apply", drop_fns=[lambda valid: drop]):
            output, weights = module(x, x, x, key_padding_mask=padded, need_head_weights=True)
        probs = weights.transpose(0, 1)  # [H, B, T, S] -> [B, H, T, S]
        assert (probs[drop] == 0).all(), "a dropped position kept attention"
        assert (probs[pad_keys & real_queries] == 0).all(), "a padded key got attention"
        assert torch.allclose(probs.sum(-1), torch.ones(b, h, t))
        assert (probs[~drop & ~pad_keys & real_queries] > 0).all()
        # the fused kernel of the training pass computed the same attention
        assert (output - fused_output).abs().max() < 1e-5
        with torch.no_grad():
            scores = attention_scores(module, x)
        expected = torch.softmax(scores.masked_fill(drop | pad_keys, float("-inf")), dim=-1)
        assert (probs - expected)[real_queries].abs().max() < 1e-5
        # the official code's additive 0/1 masks on the same scores: every probability stays > 0
        keep, key_is_real = (~drop).float(), (~pad_keys).float()
        official = torch.softmax(scores + keep + key_is_real, dim=-1)
        assert (official[drop] > 1e-4).all() and (official[pad_keys] > 1e-4).all()


def test_validation_never_masks(tagger, monkeypatch):
    task, model, criterion = tagger
    sample = padded_batch(task)
    calls = []
    monkeypatch.setattr(step_module, "addrop_mask", lambda *a, **k: calls.append(1))
    model.eval()
    criterion.addrop_phase = None
    expected, _, _ = criterion(model, sample)
    criterion.addrop_phase = Phase(True, torch.Generator().manual_seed(0))
    loss, _, log = criterion(model, sample)
    assert calls == [] and torch.equal(loss, expected)
    assert "addrop_active" not in log and log["ner_words"] > 0
    assert all(m.addrop_mode is None for m in model.modules() if isinstance(m, AddropMultiheadAttention))


def test_loss_is_cross_entropy_over_the_first_subword_of_each_word(tagger):
    task, model, criterion = tagger
    sample = padded_batch(task)
    model.train()
    criterion.addrop_phase = Phase(False)
    loss, sample_size, _ = criterion(model, sample)
    logits = model(**sample["net_input"])[0]
    starts = sample["word_starts"]
    expected = F.cross_entropy(logits[starts], sample["target"][starts], reduction="sum")
    assert sample_size == int(starts.sum()) == int(sample["target"].ne(IGNORE_INDEX).sum())
    assert torch.allclose(loss, expected, atol=1e-4)


def test_attribution_target_is_negative_pseudo_label_loss_over_labelled_positions(tagger):
    task, model, criterion = tagger
    sample = padded_batch(task)
    model.train()
    first = model(**sample["net_input"])
    target_of = criterion.attribution_target(model, sample, first)
    logits = first[0].detach().requires_grad_()
    value = target_of((logits, {}))
    labelled = sample["target"].ne(IGNORE_INDEX)
    pseudo = logits.argmax(-1)
    expected = -F.cross_entropy(logits[labelled], pseudo[labelled], reduction="sum")
    assert torch.allclose(value, expected, atol=1e-4)
    (grad,) = torch.autograd.grad(value, logits)
    assert (grad[~labelled] == 0).all() and (grad[labelled].abs().sum(-1) > 0).all()
    # gold labels give a different target when the first pass is wrong (an untrained model is)
    criterion.addrop_target = "gold"
    gold_value = criterion.attribution_target(model, sample, first)((logits, {}))
    assert not torch.allclose(gold_value, value)


def test_every_subword_option_labels_continuations(data):
    task, model, criterion = tagging_setup(data, "--label-all-subwords")
    sample = padded_batch(task)
    target, starts = sample["target"], sample["word_starts"]
    labelled = target.ne(IGNORE_INDEX)
    real = sample["net_input"]["src_tokens"].ne(task.source_dictionary.pad())
    assert labelled.sum() == real.sum() - 2 * target.size(0)  # all but <s> and </s>
    names = task.label_names
    continuations = target[labelled & ~starts].tolist()
    assert continuations and not any(names[c].startswith("B-") for c in continuations)
    _, sample_size, _ = criterion(model, sample)
    assert sample_size == int(labelled.sum())


def test_validation_f1_equals_seqeval_on_the_word_predictions(tagger, data):
    task, model, criterion = tagger
    model.eval()
    # a briefly trained model, so that the predictions hold entities right and wrong
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(30):
        sample = batch(task, "train", range(step % 5 * 32, step % 5 * 32 + 32))
        loss, size, _ = criterion(model, sample)
        optimizer.zero_grad()
        (loss / size).backward()
        optimizer.step()
    model.eval()
    dataset = task.dataset("valid")
    logs, predictions = [], {}
    with torch.no_grad():
        for start in range(0, len(dataset), 16):
            sample = batch(task, "valid", range(start, min(start + 16, len(dataset))))
            logs.append(criterion(model, sample)[2])
            logits = model(**sample["net_input"])[0]
            for row, index in enumerate(sample["id"].tolist()):
                predictions[index] = logits[row].argmax(-1).tolist()
    with metrics.aggregate() as aggregate:
        task.reduce_metrics(logs, criterion)
        values = aggregate.get_smoothed_values()

    # independently: first subwords from the piece counts, gold from the raw CoNLL file
    from fairseq.data import data_utils

    pieces = data_utils.load_indexed_dataset(str(data / "pieces" / "valid"), None, dataset_impl="mmap")
    gold = [s.tags for s in read_conll(data / "raw" / "valid.conll", columns=2)]
    predicted = []
    for index in range(len(gold)):
        firsts = torch.nonzero(word_starts(pieces[index].long())).squeeze(-1) + 1  # after <s>
        predicted.append([task.label_names[predictions[index][p]] for p in firsts.tolist()])
    expected = 100 * f1_score(gold, predicted)
    assert 0 < expected < 100, "the check needs a partly right model"
    assert values["f1"] == pytest.approx(expected, abs=1e-3)
    words = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
    assert values["word_accuracy"] == pytest.approx(100 * correct / words, abs=1e-3)


def test_roberta_checkpoint_restores_into_the_pretrained_tagger(data, tmp_path):
    task, model, _ = tagging_setup(data, *ROBERTA_SIZE, arch="addrop_roberta_tagger")
    roberta = roberta_checkpoint(task, tmp_path / "roberta.pt")
    head = {k: v.clone() for k, v in model.tagging_head.state_dict().items()}
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "roberta.pt"))
    assert any(k.startswith("encoder.lm_head.") for k in state["model"])
    model.load_state_dict(state["model"], strict=True)
    model.eval()
    tokens = padded_batch(task)["net_input"]["src_tokens"]
    with torch.no_grad():
        expected, _ = roberta.encoder.extract_features(tokens)
        _, extra = model(tokens)
    assert (extra["features"] - expected).abs().max() < 1e-5
    assert all(torch.equal(v, model.tagging_head.state_dict()[k]) for k, v in head.items())
    masked = [m for m in model.modules() if isinstance(m, AddropMultiheadAttention)]
    assert [(m.kind, m.layer) for m in masked] == [("encoder_self", 0), ("encoder_self", 1)]
    assert model.encoder.lm_head is None


def test_mismatched_roberta_checkpoint_names_the_parameter(data, tmp_path):
    task, model, _ = tagging_setup(data, *ROBERTA_SIZE, arch="addrop_roberta_tagger")
    roberta_checkpoint(task, tmp_path / "wide.pt")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "wide.pt"))
    state["model"]["encoder.sentence_encoder.layers.0.fc1.weight"] = torch.zeros(128, 32)
    with pytest.raises(AddropError, match=r"layers\.0\.fc1\.weight has shape \(128, 32\) in the "
                                          r"checkpoint but \(64, 32\) in this model"):
        model.load_state_dict(state["model"], strict=True)
    embed = "encoder.sentence_encoder.embed_tokens.weight"
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "wide.pt"))
    state["model"][embed] = state["model"][embed][:-1]
    with pytest.raises(AddropError, match=r"dictionary, plus <mask>, must be the data's"):
        model.load_state_dict(state["model"], strict=True)


def test_from_scratch_tagger_sizes_and_attention(data):
    _, model, _ = tagging_setup(data, arch="addrop_tagger_small")
    masked = [m for m in model.modules() if isinstance(m, AddropMultiheadAttention)]
    assert [m.layer for m in masked] == [0, 1, 2, 3] and masked[0].embed_dim == 256
    assert model.encoder.layer_norm is not None, "the from-scratch archs are pre-LN"


def test_a_task_without_labels_is_refused():
    from addrop_fairseq.models.addrop_tagger import task_num_labels

    with pytest.raises(AddropError, match="needs --task addrop_tagging"):
        task_num_labels(argparse.Namespace())

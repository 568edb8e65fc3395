"""AddropMultiheadAttention: fairseq's module when off; records and masks when on."""
import torch
from fairseq.modules import MultiheadAttention

from addrop_fairseq.modules.attention import (AddropMultiheadAttention, attention_mode,
                                              maskable_attention)
from conftest import tiny_batch, tiny_translation


def twin_attention(**kwargs):
    torch.manual_seed(0)
    plain = MultiheadAttention(16, 4, dropout=0.0, self_attention=True, **kwargs)
    adopted = MultiheadAttention(16, 4, dropout=0.0, self_attention=True, **kwargs)
    adopted.load_state_dict(plain.state_dict())
    return plain, AddropMultiheadAttention.adopt(adopted, "encoder_self", 0)


def padded_input(seq=5, batch=3):
    torch.manual_seed(1)
    x = torch.randn(seq, batch, 16)
    padding = torch.zeros(batch, seq, dtype=torch.bool)
    padding[1, -2:] = True
    padding[2, -4:] = True
    return x, padding


def test_off_mode_is_fairseq_and_state_dict_keys_match():
    plain, adopted = twin_attention()
    assert list(plain.state_dict()) == list(adopted.state_dict())
    x, padding = padded_input()
    for training in (True, False):
        plain.train(training), adopted.train(training)
        expected, _ = plain(x, x, x, key_padding_mask=padding)
        got, _ = adopted(x, x, x, key_padding_mask=padding)
        assert (expected - got).abs().max() < 1e-6


def test_record_mode_takes_the_explicit_path_with_the_same_output():
    plain, adopted = twin_attention()
    x, padding = padded_input()
    future = torch.triu(torch.full((5, 5), float("-inf")), 1)
    expected, _ = plain(x, x, x, key_padding_mask=padding, attn_mask=future)
    with attention_mode([adopted], "record"):
        got, _ = adopted(x, x, x, key_padding_mask=padding, attn_mask=future)
    assert (expected - got).abs().max() < 1e-5
    probs = adopted.recorded
    assert probs.shape == (3, 4, 5, 5) and probs.requires_grad
    assert torch.allclose(probs.sum(-1), torch.ones(3, 4, 5))
    # validity: batch 2 has one real key; future keys are never valid
    assert adopted.valid[2, 0].sum(-1).tolist() == [1, 1, 1, 1, 1]
    assert not (adopted.valid[0, 0] & torch.ones(5, 5, dtype=torch.bool).triu(1)).any()


def test_dropped_positions_get_zero_probability_and_padding_stays_masked():
    plain, adopted = twin_attention()
    x, padding = padded_input()
    drop = torch.zeros(3, 4, 5, 5, dtype=torch.bool)
    drop[0, :, :, 1] = True  # key 1 of sentence 0, every head and query
    drop[1, 2, 0, 0] = True
    with attention_mode([adopted], "apply", drop_fns=[lambda valid: drop]):
        _, weights = adopted(x, x, x, key_padding_mask=padding, need_head_weights=True)
    weights = weights.transpose(0, 1)  # [B, H, T, S]
    assert (weights[drop] == 0).all()
    assert (weights[padding[:, None, None, :].expand_as(weights)] == 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 5))
    assert (weights[~drop & ~padding[:, None, None, :].expand_as(weights)] > 0).all()


def test_eval_mode_never_masks():
    _, adopted = twin_attention()
    x, padding = padded_input()
    adopted.eval()
    expected, _ = adopted(x, x, x, key_padding_mask=padding)
    everything = torch.ones(3, 4, 5, 5, dtype=torch.bool)
    with attention_mode([adopted], "apply", drop_fns=[lambda valid: everything]):
        got, _ = adopted(x, x, x, key_padding_mask=padding)
    assert torch.equal(expected, got)


def test_modes_are_reset_after_the_pass_even_on_error():
    _, adopted = twin_attention()
    try:
        with attention_mode([adopted], "record"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert adopted.addrop_mode is None and adopted.drop_fn is None


def test_addrop_transformer_checkpoints_load_as_transformer_and_back():
    _, addrop = tiny_translation("addrop_transformer", seed=3)
    task, plain = tiny_translation("transformer", seed=4)
    assert list(addrop.state_dict()) == list(plain.state_dict())
    sample = tiny_batch(task.source_dictionary)
    for source, destination in ((addrop, plain), (plain, addrop)):
        destination.load_state_dict(source.state_dict(), strict=True)
        source.eval(), destination.eval()
        a = source(**sample["net_input"])[0]
        b = destination(**sample["net_input"])[0]
        assert (a - b).abs().max() < 1e-6


def test_addrop_transformer_tags_every_attention_with_kind_and_layer():
    _, model = tiny_translation("addrop_transformer", encoder_layers=3, decoder_layers=2)
    tags = sorted((m.kind, m.layer) for m in maskable_attention(model))
    assert tags == sorted([("encoder_self", i) for i in range(3)]
                          + [("decoder_self", i) for i in range(2)]
                          + [("encoder_decoder", i) for i in range(2)])

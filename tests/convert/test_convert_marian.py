"""OPUS-MT (Hugging Face MarianMT) -> addrop_marian: numbers, beam search, fine-tuning, errors.

Every model here is built in the test: sentencepiece models trained on a toy word-for-word
en->ro corpus, a Marian vocabulary made from their pieces, and a tiny MarianMTModel trained for
a few seconds so that beam search ends sentences by itself at varied lengths.
"""
import contextlib
import io
import json
import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from fairseq import checkpoint_utils  # noqa: E402
from fairseq.data import data_utils  # noqa: E402

from addrop_fairseq.convert.marian import convert_marian, encode_lines  # noqa: E402
from addrop_fairseq.errors import AddropError  # noqa: E402

LEXICON = dict(zip(
    "the cat dog sees a small house big red runs walks quickly tree over under".split(),
    "le pisica cainele vede o mica casa mare rosie alearga merge repede copac peste sub".split()))


def toy_pairs(seed, count, longest=7):
    rng, words = random.Random(seed), sorted(LEXICON)
    pairs = []
    for _ in range(count):
        source = [rng.choice(words) for _ in range(rng.randint(1, longest))]
        pairs.append((" ".join(source), " ".join(LEXICON[w] for w in source)))
    return pairs


def write_marian_dir(root: Path, *, train_steps=0, activation="swish", scale_embedding=True,
                     d_model=32, seed=0):
    """A Hugging Face MarianMT directory as OPUS-MT ships one, with a tiny model."""
    root.mkdir(parents=True)
    corpus = toy_pairs(0, 400)
    pieces = []
    for side, name in ((0, "source"), (1, "target")):
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([pair[side] for pair in corpus]), model_prefix=str(root / name),
            vocab_size=40, model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
            num_threads=1, minloglevel=2)
        (root / f"{name}.model").rename(root / f"{name}.spm")
        (root / f"{name}.vocab").unlink()
        sp = spm.SentencePieceProcessor(model_file=str(root / f"{name}.spm"))
        pieces += [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                   if not (sp.is_control(i) or sp.is_unknown(i))]
    vocab = ["</s>", "<unk>"] + sorted(set(pieces)) + ["<pad>"]  # Marian's order
    (root / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}))
    (root / "tokenizer_config.json").write_text(json.dumps({"source_lang": "en",
                                                            "target_lang": "ro"}))
    size = len(vocab)
    config = transformers.MarianConfig(
        vocab_size=size, d_model=d_model, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_position_embeddings=64,
        activation_function=activation, scale_embedding=scale_embedding, pad_token_id=size - 1,
        eos_token_id=0, decoder_start_token_id=size - 1, forced_eos_token_id=0,
        dropout=0.1, attention_dropout=0.05, activation_dropout=0.02)
    torch.manual_seed(seed)
    model = transformers.MarianMTModel(config)
    tokenizer = marian_tokenizer(root)
    if train_steps:
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for step in range(train_steps):
            batch = random.Random(step).sample(corpus, 32)
            inputs = tokenizer([p[0] for p in batch], text_target=[p[1] for p in batch],
                               return_tensors="pt", padding=True)
            inputs["labels"][inputs["labels"] == tokenizer.pad_token_id] = -100
            optimizer.zero_grad()
            model(**inputs).loss.backward()
            optimizer.step()
    else:  # untrained: widen the weights so that every difference shows in the logits
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "embed_positions" not in name:
                    parameter.copy_((1.0 if name.endswith("layer_norm.weight") else 0.0)
                                    + 0.3 * torch.randn_like(parameter))
    with torch.no_grad():
        # the start row (pad) and the output bias must matter, or the test could not see them
        model.model.shared.weight[size - 1] = 0.5 * torch.randn(d_model)
        model.final_logits_bias.copy_(0.3 * torch.randn_like(model.final_logits_bias))
    model.save_pretrained(str(root))
    return model.eval()


def marian_tokenizer(root: Path):
    return transformers.MarianTokenizer(str(root / "source.spm"), str(root / "target.spm"),
                                        str(root / "vocab.json"), source_lang="en",
                                        target_lang="ro")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: a second thread only adds contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_fairseq(checkpoint: Path):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    return models[0].eval(), task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("marian")
    model = write_marian_dir(root / "hf", train_steps=150)
    conversion = convert_marian(root / "hf", root / "fairseq")
    return root, model, conversion


def fairseq_batch(dictionary, conversion, sources, targets=None):
    """Sources left-padded and targets right-padded, as fairseq's translation task batches."""
    def ids(spm_model, lines):
        return [dictionary.encode_line(line, add_if_not_exist=False).long()
                for line in encode_lines(spm_model, lines)]

    src = ids(conversion.source_spm, sources)
    batch = {"src_tokens": data_utils.collate_tokens(src, dictionary.pad(), left_pad=True),
             "src_lengths": torch.tensor([len(s) for s in src])}
    if targets is None:
        return batch, None
    tgt = ids(conversion.target_spm, targets)
    batch["prev_output_tokens"] = data_utils.collate_tokens(
        tgt, dictionary.pad(), left_pad=False, move_eos_to_beginning=True)
    return batch, tgt


def assert_logits_match(hf_model, hf_dir, conversion, pairs):
    fairseq_model, task = load_fairseq(conversion.checkpoint)
    dictionary = task.source_dictionary
    tokenizer = marian_tokenizer(hf_dir)
    sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    hf_inputs = tokenizer(sources, text_target=targets, return_tensors="pt", padding=True)
    net_input, tgt = fairseq_batch(dictionary, conversion, sources, targets)
    to_fairseq = torch.tensor(conversion.fairseq_index)
    # the same token ids, through the documented data path (spm pieces + dict.txt)
    for row, src in zip(hf_inputs["input_ids"], net_input["src_tokens"]):
        assert torch.equal(to_fairseq[row[row != tokenizer.pad_token_id]], src[src != dictionary.pad()])
    for row, target in zip(hf_inputs["labels"], tgt):
        assert torch.equal(to_fairseq[row[row != tokenizer.pad_token_id]], target)
    with torch.no_grad():
        hf_logits = hf_model(**hf_inputs).logits
        fairseq_logits, _ = fairseq_model(**net_input)
    worst = 0.0
    for i, target in enumerate(tgt):
        n = len(target)
        worst = max(worst, (hf_logits[i, :n] - fairseq_logits[i, :n][:, to_fairseq]).abs().max().item())
    assert worst <= 1e-4, f"max abs logit difference {worst}"
    return fairseq_model, fairseq_logits, hf_logits, tgt


def test_decoder_logits_equal_hugging_face(trained):
    root, hf_model, conversion = trained
    pairs = toy_pairs(7, 6, longest=9)
    fairseq_model, logits, hf_logits, tgt = assert_logits_match(hf_model, root / "hf", conversion, pairs)
    # the batch exercised padding on both sides (left-padded sources, right-padded targets)
    assert len({len(t) for t in tgt}) > 1
    # <s> is fairseq's only, and holds no probability: log-probs equal Marian's over its symbols
    bos = fairseq_model.decoder.dictionary.bos()
    to_fairseq = torch.tensor(conversion.fairseq_index)
    lprobs = torch.log_softmax(logits, -1)
    assert lprobs[..., bos].max() < -50
    n = len(tgt[0])
    assert (lprobs[0, :n][:, to_fairseq] - torch.log_softmax(hf_logits[0, :n], -1)).abs().max() < 1e-4


@pytest.mark.parametrize("activation,scale_embedding", [("swish", True), ("gelu", False),
                                                        ("relu", True)])
def test_untrained_variants_match(tmp_path, activation, scale_embedding):
    hf_model = write_marian_dir(tmp_path / "hf", activation=activation,
                                scale_embedding=scale_embedding, d_model=16, seed=3)
    conversion = convert_marian(tmp_path / "hf", tmp_path / "fairseq")
    assert_logits_match(hf_model, tmp_path / "hf", conversion, toy_pairs(11, 4, longest=9))


def test_shared_table_permuted_bias_and_config_options(trained):
    root, hf_model, conversion = trained
    model, task = load_fairseq(conversion.checkpoint)
    dictionary = task.source_dictionary
    table = model.encoder.embed_tokens.weight
    # one Parameter: the encoder, the decoder and the output projection train the same table
    assert model.decoder.embed_tokens.weight is table
    assert model.decoder.output_projection.weight is table
    to_fairseq = torch.tensor(conversion.fairseq_index)
    assert torch.equal(table[to_fairseq], hf_model.model.shared.weight)
    assert torch.equal(model.decoder.final_logits_bias[to_fairseq], hf_model.final_logits_bias[0])
    # final_logits_bias is a buffer, as in transformers: fine-tuning does not move it
    assert "decoder.final_logits_bias" not in dict(model.named_parameters())
    assert not table[dictionary.bos()].any()  # fairseq's <s> has no Marian row
    # Marian's specials land on fairseq's: eos=0 -> 2, unk=1 -> 3, pad=last -> 1
    vocab = json.loads((root / "hf" / "vocab.json").read_text())
    assert to_fairseq[vocab["</s>"]] == dictionary.eos() == 2
    assert to_fairseq[vocab["<unk>"]] == dictionary.unk() == 3
    assert to_fairseq[vocab["<pad>"]] == dictionary.pad() == 1
    config = hf_model.config
    for layer in [*model.encoder.layers, *model.decoder.layers]:
        assert not layer.normalize_before  # post-LN
        assert layer.activation_fn is torch.nn.functional.silu
        assert layer.self_attn.dropout_module.p == config.attention_dropout
        assert layer.activation_dropout_module.p == config.activation_dropout
        assert layer.dropout_module.p == config.dropout
        assert layer.final_layer_norm.eps == hf_model.model.encoder.layers[0].final_layer_norm.eps
    assert model.encoder.embed_scale == math.sqrt(config.d_model)
    assert type(model.encoder.layers[0].self_attn).__name__ == "AddropMultiheadAttention"


def test_positions_are_marians_counted_from_the_first_real_token(trained):
    from fairseq.modules import SinusoidalPositionalEmbedding
    from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

    _, _, conversion = trained
    model, task = load_fairseq(conversion.checkpoint)
    marian = MarianSinusoidalPositionalEmbedding(64, 32)
    expected = marian.create_weight()
    table = model.encoder.embed_positions.table
    assert torch.allclose(table[1:], expected, atol=1e-6)
    fairseq_table = SinusoidalPositionalEmbedding.get_embedding(64 + 2, 32, 1)[2:]
    assert (fairseq_table - expected).abs().max() > 0.1  # fairseq's own would be wrong
    # a sentence gets the same positions however much left padding precedes it
    dictionary = task.source_dictionary
    tokens = torch.tensor([[dictionary.pad(), dictionary.pad(), 7, 8, 2], [9, 7, 8, 10, 2]])
    positions = model.encoder.embed_positions(tokens)
    assert torch.allclose(positions[0, 2:], expected[:3], atol=1e-6)
    assert torch.allclose(positions[1], expected[:5], atol=1e-6)
    assert not positions[0, :2].any()


def test_beam_search_returns_hugging_face_tokens(trained):
    from fairseq.sequence_generator import SequenceGenerator

    root, hf_model, conversion = trained
    model, task = load_fairseq(conversion.checkpoint)
    dictionary = task.target_dictionary
    tokenizer = marian_tokenizer(root / "hf")
    sources = [p[0] for p in toy_pairs(5, 16, longest=9)]
    max_length = 30
    with torch.no_grad():
        # fairseq's beam search = transformers' with early stopping, no empty output
        # (fairseq's min_len=1) and pad forbidden
        expected = hf_model.generate(
            **tokenizer(sources, return_tensors="pt", padding=True), num_beams=4,
            early_stopping=True, length_penalty=1.0, min_new_tokens=1, max_length=max_length,
            bad_words_ids=[[tokenizer.pad_token_id]], do_sample=False)
        net_input, _ = fairseq_batch(dictionary, conversion, sources)
        generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_a=0,
                                      max_len_b=max_length - 2, min_len=1, len_penalty=1.0)
        found = generator.generate([model], {"net_input": net_input})
    to_fairseq = torch.tensor(conversion.fairseq_index)
    lengths = set()
    for i, hypotheses in enumerate(found):
        row = expected[i, 1:]  # after the decoder start symbol
        hf_tokens = to_fairseq[row[row != tokenizer.pad_token_id]]
        assert torch.equal(hypotheses[0]["tokens"], hf_tokens), sources[i]
        assert hf_tokens[-1] == dictionary.eos() and len(hf_tokens) < max_length - 1
        lengths.add(len(hf_tokens))
    assert len(lengths) >= 3  # hypotheses ended by themselves at different lengths


# --- errors ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "hf"
    write_marian_dir(root, d_model=16)
    return root


def broken_copy(small_dir, tmp_path):
    copy = tmp_path / "hf"
    shutil.copytree(small_dir, copy)
    return copy


def test_non_marian_config_is_refused(small_dir, tmp_path):
    hf = broken_copy(small_dir, tmp_path)
    config = json.loads((hf / "config.json").read_text())
    config["model_type"] = "bart"
    (hf / "config.json").write_text(json.dumps(config))
    with pytest.raises(AddropError, match=r"model_type 'bart' is not supported .*'marian'"):
        convert_marian(hf, tmp_path / "out")


MALFORMED_CONFIGS = {
    # case -> (config.json bytes or a change to the valid config, fragment of the one-line error)
    "binary": (b"\x80\x04\x95PK\x03\x04", r"not UTF-8 JSON text \(byte 0x80 at offset 0\)"),
    "not JSON": (b"{model_type: marian}", r"config.json:1: not valid JSON"),
    "a list": (b'["marian"]', r"expected a JSON object of model settings, found a list"),
    "a string": (b'"marian"', r"found a string"),
    "d_model a string": ({"d_model": "32"}, r'd_model is a string \("32"\), expected an integer'),
    "layers a float": ({"encoder_layers": 2.5}, r"encoder_layers is a number .*expected an integer"),
    "heads a boolean": ({"decoder_attention_heads": True}, r"is a boolean .*expected an integer"),
    "dropout a string": ({"dropout": "0.1"}, r"dropout is a string .*expected a number"),
    "flag a number": ({"scale_embedding": 1}, r"scale_embedding is an integer .*true or false"),
    "activation null": ({"activation_function": None}, r"activation_function is null"),
    "d_model zero": ({"d_model": 0}, r"d_model is 0, expected a positive integer"),
}


@pytest.mark.parametrize("case", list(MALFORMED_CONFIGS))
def test_malformed_config_json_is_one_line(small_dir, tmp_path, case):
    hf = broken_copy(small_dir, tmp_path)
    content, message = MALFORMED_CONFIGS[case]
    if isinstance(content, dict):
        content = json.dumps({**json.loads((hf / "config.json").read_text()), **content}).encode()
    (hf / "config.json").write_bytes(content)
    with pytest.raises(AddropError, match=message) as error:
        convert_marian(hf, tmp_path / "out")
    assert str(hf / "config.json") in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name, content, message", [
    ("generation_config.json", b'[4]', "expected a JSON object of generation settings"),
    ("generation_config.json", b'{"num_beams": "4"}', "num_beams is a string"),
    ("tokenizer_config.json", b'{"source_lang": 1, "target_lang": "ro"}', "source_lang is an integer"),
])
def test_malformed_side_files_are_one_line(small_dir, tmp_path, name, content, message):
    hf = broken_copy(small_dir, tmp_path)
    (hf / name).write_bytes(content)
    with pytest.raises(AddropError, match=message):
        convert_marian(hf, tmp_path / "out")


@pytest.mark.parametrize("name", ["source.spm", "target.spm", "vocab.json", "config.json"])
def test_missing_files_are_named(small_dir, tmp_path, name):
    hf = broken_copy(small_dir, tmp_path)
    (hf / name).unlink()
    with pytest.raises(AddropError, match=re.escape(str(hf / name))):
        convert_marian(hf, tmp_path / "out")


def test_vocabulary_and_embedding_sizes_must_agree(small_dir, tmp_path):
    hf = broken_copy(small_dir, tmp_path)
    vocab = json.loads((hf / "vocab.json").read_text())
    vocab["extra_piece"] = len(vocab)
    (hf / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(AddropError, match=r"vocab\.json has (\d+) entries.* has (\d+) rows"):
        convert_marian(hf, tmp_path / "out")


def test_weights_of_another_architecture_are_refused(small_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    hf = broken_copy(small_dir, tmp_path)
    weights = load_file(str(hf / "model.safetensors"))
    # an mBART-style checkpoint: embedding layer norms Marian does not have
    weights["model.encoder.layernorm_embedding.weight"] = torch.ones(16)
    save_file(weights, str(hf / "model.safetensors"))
    with pytest.raises(AddropError, match="a MarianMT model does not have: "
                                          "encoder.layernorm_embedding.weight"):
        convert_marian(hf, tmp_path / "out")
    del weights["model.encoder.layernorm_embedding.weight"]
    del weights["model.decoder.layers.1.fc2.bias"]
    save_file(weights, str(hf / "model.safetensors"))
    with pytest.raises(AddropError, match=r"missing decoder\.layers\.1\.fc2\.bias"):
        convert_marian(hf, tmp_path / "out")


def test_checkpoint_of_another_architecture_is_refused(trained):
    from conftest import tiny_translation

    _, _, conversion = trained
    marian, _ = load_fairseq(conversion.checkpoint)
    _, transformer = tiny_translation()
    with pytest.raises(AddropError, match="not an addrop_marian one"):
        marian.load_state_dict(transformer.state_dict())


def test_languages_must_be_known_and_distinct(small_dir, tmp_path):
    hf = broken_copy(small_dir, tmp_path)
    (hf / "tokenizer_config.json").unlink()
    with pytest.raises(AddropError, match="give the source and target languages"):
        convert_marian(hf, tmp_path / "out")
    with pytest.raises(AddropError, match="both 'en'"):
        convert_marian(hf, tmp_path / "out", "en", "en")


def test_printed_commands_are_valid_fairseq_command_lines(small_dir, tmp_path, plugin_dir):
    import shlex

    from fairseq import options

    conversion = convert_marian(small_dir, tmp_path / "out")
    lines = [shlex.split(line) for line in conversion.commands(plugin=plugin_dir)
             if not line.startswith("#")]
    programs = [words[0] for words in lines]
    assert programs == ["addrop-convert-opus-mt"] * 6 + ["fairseq-preprocess", "fairseq-train",
                                                   "fairseq-generate"]
    preprocess, train, generate = lines[6:]
    assert options.get_preprocessing_parser().parse_args(preprocess[1:]).srcdict == str(
        conversion.dictionaries["en"])
    parsed = options.parse_args_and_arch(options.get_training_parser(), train[1:])
    assert parsed.arch == "addrop_marian" and parsed.marian_activation_fn == "swish"
    assert parsed.finetune_from_model == str(conversion.checkpoint)
    assert parsed.restore_file == "checkpoint_last.pt" and not parsed.reset_optimizer
    assert parsed.clip_norm == 1.0 and parsed.required_batch_size_multiple == 1
    parsed = options.parse_args_and_arch(options.get_generation_parser(), generate[1:])
    assert parsed.beam == 4 and parsed.required_batch_size_multiple == 1


# --- end to end: the documented commands ---------------------------------------------------------

def write_split(directory: Path, name: str, pairs):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.en").write_text("".join(p[0] + "\n" for p in pairs))
    (directory / f"{name}.ro").write_text("".join(p[1] + "\n" for p in pairs))


def generated(output: str):
    """(hypothesis tokens, detokenized hypotheses, references) by sentence id."""
    pieces, detok, refs = {}, {}, {}
    for line in output.splitlines():
        tag, _, rest = line.partition("\t")
        if tag.startswith("H-"):
            pieces[int(tag[2:])] = rest.split("\t")[1]
        elif tag.startswith("D-"):
            detok[int(tag[2:])] = rest.split("\t")[1]
        elif tag.startswith("T-"):
            refs[int(tag[2:])] = rest
    ids = sorted(pieces)
    return [pieces[i] for i in ids], [detok[i] for i in ids], [refs[i] for i in ids]

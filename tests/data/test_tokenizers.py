"""data/tokenizers.py: every tokenizer the prepare commands use keeps the one Tokenizer contract."""
import json
import random

import pytest

from addrop_fairseq.data.tokenizers import (
    GPT2BPETokenizer,
    HFTextTokenizer,
    HFWordTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WhitespaceTokenizer,
    train_sentencepiece,
)
from addrop_fairseq.errors import AddropError

WORDS = "river mountain forest golden the red blue runs Zürich 東京".split()


def texts(seed=0, count=40):
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 8))) for _ in range(count)]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("spm")
    (root / "train.txt").write_text("\n".join(texts(1, 200)) + "\n", encoding="utf-8")
    return train_sentencepiece([root / "train.txt"], root / "spm", vocab_size=300, threads=1)


def gpt2_files(root):
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    merges = [("r", "i"), ("ri", "v"), ("riv", "e"), ("rive", "r"), ("Ġ", "g")]
    vocab = {s: i for i, s in enumerate(symbols + ["".join(m) for m in merges])}
    (root / "encoder.json").write_text(json.dumps(vocab))
    (root / "vocab.bpe").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return str(root / "encoder.json"), str(root / "vocab.bpe")


def wordpiece_dir(root):
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w.lower() for w in WORDS[:8]] + ["##s"]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(root))
    return str(root)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, spm_model):
    root = tmp_path_factory.mktemp("tokenizers")
    hf = wordpiece_dir(root / "hf")
    return {"sentencepiece": SentencePieceTokenizer(spm_model),
            "whitespace": WhitespaceTokenizer(),
            "gpt2": GPT2BPETokenizer(*gpt2_files(root)),
            "hf-text": HFTextTokenizer(hf),
            "hf-word": HFWordTokenizer(hf)}


@pytest.mark.parametrize("name", ["sentencepiece", "whitespace", "gpt2", "hf-text", "hf-word"])
def test_every_tokenizer_keeps_the_contract(tokenizers, name):
    tokenizer = tokenizers[name]
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.kind in name or (tokenizer.kind == "huggingface" and name.startswith("hf"))
    assert tokenizer.description
    sample = texts(2)
    symbols = tokenizer.symbols(sample)
    assert len(symbols) == len(sample) and all(isinstance(s, str) for row in symbols for s in row)
    vocabulary = tokenizer.vocabulary()
    assert len(vocabulary) == len(set(vocabulary))
    if name == "whitespace":  # an open vocabulary: the dictionary comes from the training counts
        assert vocabulary == [] and symbols == [text.split() for text in sample]
        return
    # every symbol a text can produce has a place in a dictionary made from the vocabulary,
    # except the unknown token's own symbol
    produced = {s for row in symbols for s in row}
    assert produced - set(vocabulary) <= {"<unk>", "[UNK]"}, produced - set(vocabulary)
    assert len(produced & set(vocabulary)) > 5


def test_sentencepiece_symbols_are_the_pieces_and_specials_stay_out(spm_model):
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    tokenizer = SentencePieceTokenizer(spm_model)
    sample = texts(3)
    assert tokenizer.symbols(sample) == processor.encode(sample, out_type=str)
    # a word encoded alone carries the word-initial marker, as inside a sentence
    assert tokenizer.symbols(["river"])[0][0].startswith("\u2581")
    vocabulary = tokenizer.vocabulary()
    assert {"<unk>", "<s>", "</s>"}.isdisjoint(vocabulary)
    assert len(vocabulary) == processor.get_piece_size() - 3
    assert "<0xE6>" in vocabulary  # byte fallback: the byte pieces are ordinary symbols
    assert tokenizer.description == f"sentencepiece:{spm_model}"


def test_tokenizer_errors_are_one_line_and_name_the_option(tmp_path, spm_model):
    with pytest.raises(AddropError, match=rf"^--spm-model {tmp_path / 'none.model'}: no such file$"):
        SentencePieceTokenizer(tmp_path / "none.model", option="--spm-model")
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(AddropError, match=rf"^--sentencepiece {tmp_path / 'bad.model'}: not a "
                                          r"sentencepiece model \(.+\)$"):
        SentencePieceTokenizer(tmp_path / "bad.model")
    (tmp_path / "tiny.txt").write_text("a b c\n")
    with pytest.raises(AddropError, match=r"^--vocab-size 10: sentencepiece training failed: .+"):
        train_sentencepiece([tmp_path / "tiny.txt"], tmp_path / "tiny", vocab_size=10, threads=1)
    with pytest.raises(AddropError, match=rf"^--hf-tokenizer {tmp_path / 'no'}: not a directory$"):
        HFTextTokenizer(str(tmp_path / "no"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AddropError, match=r"^--hf-tokenizer .*empty: no tokenizer files"):
        HFWordTokenizer(tmp_path / "empty")
    with pytest.raises(AddropError, match=r"^--gpt2-bpe: no such file"):
        GPT2BPETokenizer(str(tmp_path / "encoder.json"), str(tmp_path / "vocab.bpe"))

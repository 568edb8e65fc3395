"""fairseq -> Hugging Face export: logits, beam search, the token-classification pipeline, the
round trip HF -> fairseq -> HF, and the one-line refusals.

The Hugging Face models are the conversion tests' tiny random ones (built in the test, nothing
downloaded); "fine-tuning" is simulated by moving every fairseq weight a little, so that an
export that copied the reference's weights instead of the checkpoint's would fail.
"""
import json
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO

transformers = pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from fairseq import checkpoint_utils  # noqa: E402
from fairseq.data import data_utils  # noqa: E402

from addrop_fairseq.convert import build_fairseq, save_checkpoint  # noqa: E402
from addrop_fairseq.convert.export import export_hf  # noqa: E402
from addrop_fairseq.convert.hf_encoder import convert_hf_encoder  # noqa: E402
from addrop_fairseq.convert.marian import convert_marian  # noqa: E402
from addrop_fairseq.errors import AddropError  # noqa: E402
from test_convert_hf_encoder import TEXTS, encoder_of, write_encoder_dir  # noqa: E402
from test_convert_marian import (  # noqa: E402
    fairseq_batch,
    toy_pairs,
    write_marian_dir,
)

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fine_tune(model, scale=0.01, keep=lambda name: False, seed=1):
    """Moves every weight a little, as fine-tuning would (``keep``: names left alone)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not keep(name):
                tensor.add_(scale * torch.randn(tensor.shape, generator=generator))


def load_fairseq(checkpoint):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    return models[0].eval(), task


# --- Marian --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    """A trained tiny OPUS-MT, converted, then fine-tuned as fairseq-train would save it."""
    root = tmp_path_factory.mktemp("export_marian")
    hf_model = write_marian_dir(root / "hf", train_steps=150)
    conversion = convert_marian(root / "hf", root / "converted")
    model, task = load_fairseq(conversion.checkpoint)
    bos = task.source_dictionary.bos()
    fine_tune(model, scale=0.002)
    with torch.no_grad():  # no gradient ever reaches fairseq's <s> row: it stays zero
        model.encoder.embed_tokens.weight[bos] = 0
        model.decoder.final_logits_bias[bos] = 0
    cfg, _, _ = build_fairseq([str(root / "converted"), "--task", "addrop_translation", "-s", "en",
                               "-t", "ro", *conversion.model_arguments,
                               "--criterion", "addrop_label_smoothed_cross_entropy",
                               "--restore-file", str(conversion.checkpoint)])
    tuned = root / "tuned" / "checkpoint_best.pt"
    tuned.parent.mkdir()
    save_checkpoint(tuned, cfg, model, "AddropLabelSmoothedCrossEntropyCriterion")
    exported = export_hf(tuned, root / "exported")
    return root, hf_model, conversion, model, tuned, exported


def test_marian_logits_and_files(marian):
    root, _, conversion, model, _, exported = marian
    assert exported.hf_class == "MarianMTModel" and exported.reference == root / "hf"
    out = root / "exported"
    for name in ("config.json", "generation_config.json", "source.spm", "target.spm", "vocab.json",
                 "tokenizer_config.json"):
        assert (out / name).is_file(), name
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(out)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    assert type(hf).__name__ == "MarianMTModel" and type(tokenizer).__name__ == "MarianTokenizer"
    pairs = toy_pairs(7, 6, longest=9)
    sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    inputs = tokenizer(sources, text_target=targets, return_tensors="pt", padding=True)
    net_input, tgt = fairseq_batch(model.decoder.dictionary, conversion, sources, targets)
    to_fairseq = torch.tensor(conversion.fairseq_index)
    with torch.no_grad():
        hf_logits = hf(**inputs).logits
        fairseq_logits, _ = model(**net_input)
    worst = max((hf_logits[i, :len(t)] - fairseq_logits[i, :len(t)][:, to_fairseq]).abs().max()
                .item() for i, t in enumerate(tgt))
    assert worst <= 1e-4, f"max abs logit difference {worst}"
    # the fine-tuned weights were exported, not the reference's
    original = transformers.MarianMTModel.from_pretrained(str(root / "hf"))
    assert not torch.equal(original.model.encoder.layers[0].fc1.weight,
                           hf.model.encoder.layers[0].fc1.weight)


def test_marian_beam_search_agrees_with_fairseq(marian):
    from fairseq.sequence_generator import SequenceGenerator

    root, _, conversion, model, _, _ = marian
    hf = transformers.MarianMTModel.from_pretrained(str(root / "exported")).eval()
    tokenizer = transformers.MarianTokenizer.from_pretrained(str(root / "exported"))
    dictionary = model.decoder.dictionary
    sources = [p[0] for p in toy_pairs(5, 8, longest=9)]
    max_length = 30
    with torch.no_grad():
        # fairseq's beam search = transformers' with early stopping, min length 1, pad forbidden
        expected = hf.generate(**tokenizer(sources, return_tensors="pt", padding=True),
                               num_beams=4, early_stopping=True, length_penalty=1.0,
                               min_new_tokens=1, max_length=max_length, do_sample=False,
                               bad_words_ids=[[tokenizer.pad_token_id]])
        net_input, _ = fairseq_batch(dictionary, conversion, sources)
        generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_a=0,
                                      max_len_b=max_length - 2, min_len=1, len_penalty=1.0)
        found = generator.generate([model], {"net_input": net_input})
    to_fairseq = torch.tensor(conversion.fairseq_index)
    lengths = set()
    for i, hypotheses in enumerate(found):
        row = expected[i, 1:]
        hf_tokens = to_fairseq[row[row != tokenizer.pad_token_id]]
        assert torch.equal(hypotheses[0]["tokens"], hf_tokens), sources[i]
        lengths.add(len(hf_tokens))
    assert len(lengths) >= 3


def test_marian_round_trip_is_exact(marian, tmp_path):
    root, hf_model, conversion, _, _, _ = marian
    export_hf(conversion.checkpoint, tmp_path / "back")
    back = transformers.MarianMTModel.from_pretrained(str(tmp_path / "back")).state_dict()
    original = hf_model.state_dict()
    assert set(back) == set(original)
    different = [k for k in original if not torch.equal(original[k], back[k])]
    assert not different, different[:3]


# --- a transformer trained here from scratch -> FSMT -------------------------------------------

SCRATCH_SIZES = ["--arch", "addrop_transformer", "--share-all-embeddings",
                 "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "32",
                 "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                 "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "4",
                 "--decoder-attention-heads", "4", "--dropout", "0.1",
                 "--criterion", "addrop_label_smoothed_cross_entropy"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The project's translation data path (prepare_translation.py: joint sentencepiece, joined
    dictionary) and a tiny addrop_transformer trained on it until it ends sentences itself."""
    from addrop_fairseq.cli.prepare_translation import main as prepare

    root = tmp_path_factory.mktemp("export_scratch")
    pairs = toy_pairs(0, 300, longest=9)
    splits = {"train": pairs[:240], "valid": pairs[240:270], "test": pairs[270:]}
    for name, part in splits.items():
        (root / f"{name}.en").write_text("".join(p[0] + "\n" for p in part))
        (root / f"{name}.ro").write_text("".join(p[1] + "\n" for p in part))
    prepare(["-s", "en", "-t", "ro", "--dest", str(root / "data"), "--train", str(root / "train"),
             "--valid", str(root / "valid"), "--test", str(root / "test"), "--vocab-size", "300",
             "--workers", "1"])
    torch.manual_seed(0)
    # no -s/-t, as in the recipes: fairseq reads the pair off the data, the checkpoint says None
    cfg, task, model = build_fairseq([str(root / "data" / "bin"), "--task", "addrop_translation",
                                      *SCRATCH_SIZES])
    assert cfg.task.source_lang is None
    task.load_dataset("train")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    pad = task.target_dictionary.pad()
    model.train()
    for epoch in range(1, 13):
        batches = task.get_batch_iterator(dataset=task.dataset("train"), max_tokens=400, seed=1,
                                          epoch=epoch).next_epoch_itr(shuffle=True)
        for sample in batches:
            logits = model(**sample["net_input"])[0]
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                                     sample["target"].view(-1), ignore_index=pad)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    checkpoint = root / "checkpoints" / "checkpoint_best.pt"
    checkpoint.parent.mkdir()
    save_checkpoint(checkpoint, cfg, model, "AddropLabelSmoothedCrossEntropyCriterion")
    export_hf(checkpoint, root / "exported")
    return root, checkpoint, splits, float(loss)


def test_scratch_tokenizer_gives_the_binarized_ids(scratch):
    from fairseq.data import Dictionary
    import sentencepiece

    root, checkpoint, splits, _ = scratch
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root / "exported"))
    _, task = load_fairseq(checkpoint)
    task.load_dataset("test")
    binarized = task.dataset("test")
    for index, (source, target) in enumerate(splits["test"]):
        assert tokenizer(source)["input_ids"] == binarized.src[index].tolist()
        assert tokenizer(target)["input_ids"] == binarized.tgt[index].tolist()
    # text the training data never showed: sentencepiece's normalization and byte fallback
    processor = sentencepiece.SentencePieceProcessor(model_file=str(root / "data" / "spm.model"))
    dictionary = Dictionary.load(str(root / "data" / "bin" / "dict.en.txt"))
    for text in ("the café über naïve 東京 🙂", "  two   spaces  ", "Tab\tand ＦＵＬＬ width"):
        expected = dictionary.encode_line(" ".join(processor.encode(text, out_type=str)),
                                          add_if_not_exist=False).tolist()
        assert tokenizer(text)["input_ids"] == expected, text
    assert tokenizer.decode(tokenizer("the café 東京")["input_ids"],
                            skip_special_tokens=True) == "the café 東京"


def scratch_batch(tokenizer, dictionary, pairs):
    sources = [p[0] for p in pairs]
    rows = [torch.tensor(tokenizer(s)["input_ids"]) for s in sources]
    net_input = {"src_tokens": data_utils.collate_tokens(rows, dictionary.pad(), left_pad=True),
                 "src_lengths": torch.tensor([len(r) for r in rows])}
    return sources, net_input


def test_scratch_logits_and_beam_search(scratch):
    from fairseq.sequence_generator import SequenceGenerator

    root, checkpoint, _, loss = scratch
    assert loss < 1.0  # trained far enough to end sentences by itself
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(root / "exported")).eval()
    assert type(hf).__name__ == "FSMTForConditionalGeneration"
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(root / "exported"))
    model, task = load_fairseq(checkpoint)
    dictionary = task.target_dictionary
    pairs = toy_pairs(7, 8, longest=9)
    sources, net_input = scratch_batch(tokenizer, dictionary, pairs)
    targets = [torch.tensor(tokenizer(p[1])["input_ids"]) for p in pairs]
    net_input["prev_output_tokens"] = data_utils.collate_tokens(
        targets, dictionary.pad(), left_pad=False, move_eos_to_beginning=True)
    batch = tokenizer(sources, return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = model(**net_input)[0]
        theirs = hf(**batch, decoder_input_ids=net_input["prev_output_tokens"]).logits
    worst = max((ours[i, :len(t)] - theirs[i, :len(t)]).abs().max().item()
                for i, t in enumerate(targets))
    assert worst <= 1e-4, f"max abs logit difference {worst}"

    sources, net_input = scratch_batch(tokenizer, dictionary, toy_pairs(5, 8, longest=9))
    max_length = 30
    with torch.no_grad():  # the exported generation_config is fairseq-generate's beam search
        expected = hf.generate(**tokenizer(sources, return_tensors="pt", padding=True),
                               max_length=max_length)
        generator = SequenceGenerator([model], dictionary, beam_size=4, max_len_a=0,
                                      max_len_b=max_length - 2, min_len=1, len_penalty=1.0)
        found = generator.generate([model], {"net_input": net_input})
    lengths = set()
    for i, hypotheses in enumerate(found):
        row = expected[i, 1:]
        tokens = row[row != dictionary.pad()]
        assert torch.equal(hypotheses[0]["tokens"], tokens), sources[i]
        assert len(tokens) < max_length - 1
        lengths.add(len(tokens))
    assert len(lengths) >= 3


# --- encoders: taggers, classifiers, masked LM ---------------------------------------------------

@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """kind -> (HF model, tokenizer, conversion, root), converted once for the module."""
    made = {}

    def make(kind):
        if kind not in made:
            root = tmp_path_factory.mktemp(f"export_{kind}")
            model, tokenizer = write_encoder_dir(kind, root / "hf", root)
            conversion = convert_hf_encoder(root / "hf", root / "converted")
            made[kind] = (model, tokenizer, conversion, root)
        return made[kind]
    return make


def fine_tuned_checkpoint(conversion, root, name, task_args, arch_args=None, head_scale=1.0,
                          seed=1):
    """A fairseq checkpoint of a task model restored from the conversion, every weight moved."""
    arguments = list(arch_args or conversion.model_arguments)
    (root / name).mkdir(exist_ok=True)
    torch.manual_seed(seed)  # the new heads' initialization, whatever ran before
    # the documented start (the Marian fixture above keeps the older --restore-file form)
    cfg, task, model = build_fairseq([*task_args, *arguments,
                                      "--finetune-from-model", str(conversion.checkpoint)])
    converted = checkpoint_utils.load_checkpoint_to_cpu(str(conversion.checkpoint))["model"]
    own = model.state_dict()
    with torch.no_grad():
        for key, value in own.items():
            if key in converted and not key.startswith("encoder.lm_head."):
                value.copy_(converted[key])
            elif "head" in key and key.endswith("weight"):
                value.mul_(head_scale)
    fine_tune(model, seed=seed)
    with torch.no_grad():  # fairseq never reads (so never trains) position rows 0 and 1
        positions = "encoder.sentence_encoder.embed_positions.weight"
        own[positions][:2] = converted[positions][:2]
    path = root / name / "checkpoint_best.pt"
    save_checkpoint(path, cfg, model, "criterion")
    return path, model


def ner_data(root, conversion):
    """Data for --task addrop_tagging written by the project's prepare script (its dev split
    is what the pipeline test tags)."""
    from addrop_fairseq.cli.prepare_conll2003 import main as prepare

    rng = torch.Generator().manual_seed(0)
    conll = root / "conll"
    conll.mkdir(exist_ok=True)
    for split, count in (("train", 12), ("valid", 6), ("test", 3)):
        lines = []
        for s in range(count):
            words = TEXTS[s % len(TEXTS)].split()
            labels = [NER_LABELS[int(i)] for i in torch.randint(len(NER_LABELS), (len(words),),
                                                                 generator=rng)]
            labels = [("I" + label[1:] if label.startswith("I") and i and labels[i - 1] != "O"
                       else label.replace("I-", "B-")) for i, label in enumerate(labels)]
            lines += [f"{w} X X {t}" for w, t in zip(words, labels)] + [""]
        if split == "train":  # every label in train
            lines += ["the X X B-PER", "quick X X I-PER", "dog X X B-LOC", "a X X I-LOC",
                      "fox X X B-ORG", ""]
        (conll / f"{split}.txt").write_text("\n".join(lines) + "\n")
    data = root / "ner-data"
    prepare(["--conll-dir", str(conll), "--dest", str(data), "--force", "--tokenizer",
             "huggingface", "--hf-tokenizer", str(conversion.tokenizer), "--dict",
             str(conversion.dictionary)])
    return data


def tagger(encoders, kind):
    hf_model, tokenizer, conversion, root = encoders(kind)
    data = ner_data(root, conversion)
    arguments = [a if a != "addrop_hf_encoder" else "addrop_roberta_tagger"
                 for a in conversion.model_arguments]
    checkpoint, _ = fine_tuned_checkpoint(
        conversion, root, "tagger", [str(data), "--task", "addrop_tagging", "--criterion",
                                     "addrop_tagging"], arguments, head_scale=30.0)
    return hf_model, tokenizer, conversion, root, data, checkpoint


def hf_and_fairseq_tokens(tokenizer, conversion, texts=TEXTS):
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    tokens = torch.tensor(conversion.fairseq_index)[batch["input_ids"]]
    return batch, tokens, batch["attention_mask"].bool()


@pytest.mark.parametrize("kind", ["bert", "roberta", "electra"])
def test_tagger_logits(encoders, kind, tmp_path):
    _, _, conversion, root, data, checkpoint = tagger(encoders, kind)
    result = export_hf(checkpoint, tmp_path / "out")
    hf = transformers.AutoModelForTokenClassification.from_pretrained(str(tmp_path / "out")).eval()
    assert type(hf).__name__ == f"{kind.capitalize()}ForTokenClassification"
    # class c is the label dictionary's symbol c + 4 (after fairseq's specials)
    symbols = [line.split()[0] for line in (data / "label" / "dict.txt").read_text().splitlines()]
    assert hf.config.id2label == dict(enumerate(symbols)) and set(symbols) == set(NER_LABELS)
    assert result.labels == hf.config.id2label
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    batch, tokens, real = hf_and_fairseq_tokens(tokenizer, conversion)
    model, _ = load_fairseq(checkpoint)
    with torch.no_grad():
        ours = model(tokens)[0]
        theirs = hf(**batch).logits
    assert (ours - theirs)[real].abs().max() <= 1e-4
    assert ours[real].std(0).max() > 0.05  # the logits vary from token to token


def test_pipeline_gives_evaluate_ners_labels(encoders, tmp_path):
    """transformers.pipeline("token-classification") labels each word (its first subword) as
    addrop-evaluate-ner does, and seqeval's F1 is the same."""
    from seqeval.metrics import f1_score

    from addrop_fairseq.data.ner import read_conll
    from addrop_fairseq.scoring.checkpoint import load_checkpoint
    from addrop_fairseq.scoring.ner import predict

    _, _, _, _, data, checkpoint = tagger(encoders, "bert")
    export_hf(checkpoint, tmp_path / "out")
    expected = predict(load_checkpoint(checkpoint, data, splits=["valid"], cpu=True), "valid",
                       1000, None)
    sentences = read_conll(data / "raw" / "valid.conll", columns=2)
    tag = transformers.pipeline("token-classification", model=str(tmp_path / "out"),
                                aggregation_strategy="none", ignore_labels=[], device="cpu")
    predicted, gold = [], []
    for index, sentence in enumerate(sentences):
        text, starts = "", []
        for word in sentence.words:
            starts.append(len(text) + (1 if text else 0))
            text += (" " if text else "") + word
        by_start = {}
        for token in tag(text):
            by_start.setdefault(token["start"], token["entity"])  # a word's first subword
        labels = [by_start[start] for start in starts]
        assert labels == expected[index], sentence.words
        predicted.append(labels)
        gold.append(sentence.tags)
    assert len({label for labels in predicted for label in labels}) >= 3
    assert f1_score(gold, predicted) == f1_score(gold, [expected[i] for i in range(len(sentences))])


def glue_data(root, labels, gpt2_ids=False):
    data = root / "glue-data"
    (data / "input0").mkdir(parents=True, exist_ok=True)
    (data / "label").mkdir(exist_ok=True)
    dictionary = (root / "converted" / "dict.txt").read_text().splitlines()
    if gpt2_ids:  # fairseq's own RoBERTa dictionaries name GPT-2 ids, not token strings
        dictionary = [f"{100 + i} {line.split()[1]}" if not line.startswith("<mask>") else line
                      for i, line in enumerate(dictionary)]
    (data / "input0" / "dict.txt").write_text("\n".join(dictionary) + "\n")
    (data / "label" / "dict.txt").write_text("".join(f"{name} {9 - i}\n"
                                                     for i, name in enumerate(labels)))
    return data


@pytest.mark.parametrize("kind, regression, native", [
    ("bert", False, False), ("roberta", False, False), ("electra", False, False),
    ("bert", True, False), ("roberta", False, True)])
def test_sentence_classifier_logits(encoders, tmp_path, kind, regression, native):
    """GLUE classifiers (3 MNLI labels) and an STS-B regression, on converted encoders, and
    fairseq's own --arch roberta restored from a converted RoBERTa."""
    _, _, conversion, root, = encoders(kind)
    labels = ["entailment", "neutral", "contradiction"]
    data = glue_data(root, labels, gpt2_ids=native)
    task_args = [str(data), "--task", "addrop_sentence_prediction",
                 "--criterion", "addrop_sentence_prediction"]
    task_args += (["--regression-target", "--num-classes", "1", "--glue-task", "stsb"]
                  if regression else ["--num-classes", "3", "--glue-task", "none"])
    arch_args = list(conversion.model_arguments)
    if kind == "electra":
        arch_args += ["--pooler-activation-fn", "gelu"]  # ELECTRA's own head
    if native:
        assert conversion.roberta_compatible
        at = arch_args.index("--layernorm-eps")
        arch_args = ["--arch", "roberta", *arch_args[2:at], *arch_args[at + 2:]]
    name = f"glue-{kind}-{regression}-{native}"
    checkpoint, model = fine_tuned_checkpoint(conversion, root, name, task_args, arch_args,
                                              head_scale=10.0)
    result = export_hf(checkpoint, tmp_path / "out")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out"))
    hf.eval()
    assert type(hf).__name__ == f"{kind.capitalize()}ForSequenceClassification"
    if regression:
        assert hf.config.num_labels == 1 and hf.config.problem_type == "regression"
    else:
        assert hf.config.id2label == dict(enumerate(labels))
    assert any("encoder.lm_head" in item for item in result.left_out)
    assert any("GPT-2 ids" in note for note in result.notes) == native
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    batch, tokens, _ = hf_and_fairseq_tokens(tokenizer, conversion)
    model.eval()
    with torch.no_grad():
        ours = model(tokens, features_only=True,
                     classification_head_name="sentence_classification_head")[0]
        theirs = hf(**batch).logits
    assert ours.shape == theirs.shape and (ours - theirs).abs().max() <= 1e-4
    # the tokenizer writes type 1 for a second segment; the export computes what fairseq does
    # (type 0 everywhere)
    if kind == "bert":
        pair = tokenizer(TEXTS[0], TEXTS[1], return_tensors="pt")
        assert pair["token_type_ids"].any()
        with torch.no_grad():
            assert torch.allclose(hf(**pair).logits, hf(input_ids=pair["input_ids"]).logits,
                                  atol=1e-6)


def test_electra_classifier_with_bert_s_tanh_head_is_refused(encoders, tmp_path):
    _, _, conversion, root = encoders("electra")
    data = glue_data(root, ["0", "1"])
    checkpoint, _ = fine_tuned_checkpoint(
        conversion, root, "glue-electra-tanh",
        [str(data), "--task", "addrop_sentence_prediction", "--criterion",
         "addrop_sentence_prediction", "--num-classes", "2", "--glue-task", "none"])
    with pytest.raises(AddropError, match=r"--pooler-activation-fn tanh, but ElectraForSequence"
                                          r"Classification applies gelu"):
        export_hf(checkpoint, tmp_path / "out")


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_encoder_round_trip_is_exact(encoders, kind, tmp_path):
    hf_model, tokenizer, conversion, _ = encoders(kind)
    export_hf(conversion.checkpoint, tmp_path / "back")
    back = transformers.AutoModelForMaskedLM.from_pretrained(str(tmp_path / "back")).eval()
    assert type(back) is type(hf_model)
    original, returned = hf_model.state_dict(), back.state_dict()
    assert set(original) == set(returned)
    different = sorted(k for k in original if not torch.equal(original[k], returned[k]))
    if kind == "bert":
        # BERT's type-1 row is the one tensor the conversion does not carry (fairseq has no token
        # types; type 0 is folded into the positions): the export gives type 1 type 0's row
        assert different == ["bert.embeddings.token_type_embeddings.weight"]
        types = returned[different[0]]
        assert torch.equal(types[0], original[different[0]][0]) and torch.equal(types[1], types[0])
    else:
        assert not different, different[:3]
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(encoder_of(back)(**batch).last_hidden_state,
                           encoder_of(hf_model)(**batch).last_hidden_state)


# --- refusals ------------------------------------------------------------------------------------

def test_pre_ln_transformer_is_refused_with_the_reason(scratch, tmp_path):
    root, _, _, _ = scratch
    cfg, _, model = build_fairseq([str(root / "data" / "bin"), "--task", "addrop_translation",
                                   "-s", "en", "-t", "ro", *SCRATCH_SIZES,
                                   "--encoder-normalize-before"])
    save_checkpoint(tmp_path / "pre-ln.pt", cfg, model, "criterion")
    with pytest.raises(AddropError, match=r"--arch addrop_transformer with "
                                          r"encoder_normalize_before=True is not exportable: .*"
                                          r"FSMTForConditionalGeneration\) has post-LN") as error:
        export_hf(tmp_path / "pre-ln.pt", tmp_path / "out")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


def test_from_scratch_tagger_is_refused_with_the_reason(encoders, tmp_path):
    _, _, conversion, root = encoders("bert")
    data = ner_data(root, conversion)
    cfg, _, model = build_fairseq([str(data), "--task", "addrop_tagging", "--criterion",
                                   "addrop_tagging", "--arch", "addrop_tagger_tiny"])
    save_checkpoint(tmp_path / "tagger.pt", cfg, model, "criterion")
    with pytest.raises(AddropError, match=r"--arch addrop_tagger_tiny is not exportable: .*pre-LN"):
        export_hf(tmp_path / "tagger.pt", tmp_path / "out")


def test_missing_reference_tokenizer(marian, tmp_path):
    root, _, _, _, tuned, _ = marian
    reference = tmp_path / "reference"
    shutil.copytree(root / "hf", reference)
    (reference / "source.spm").unlink()
    with pytest.raises(AddropError, match=r"missing source sentencepiece model: .*source\.spm"):
        export_hf(tuned, tmp_path / "out", reference=reference)
    # a checkpoint that records no conversion and names no --restore-file
    state = torch.load(tuned, weights_only=False)
    state["cfg"]["checkpoint"]["restore_file"] = "checkpoint_last.pt"
    torch.save(state, tmp_path / "bare.pt")
    with pytest.raises(AddropError, match=r"no reference tokenizer: .*pass --reference HF_DIR"):
        export_hf(tmp_path / "bare.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_out_dir_needs_force_and_is_replaced_whole(marian, tmp_path):
    _, _, _, _, tuned, _ = marian
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier export")
    with pytest.raises(AddropError, match=r"OUT_DIR .* exists and is not empty; pass --force"):
        export_hf(tuned, out)
    assert (out / "stale.txt").is_file()
    export_hf(tuned, out, force=True)
    assert not (out / "stale.txt").exists() and (out / "config.json").is_file()


def test_a_tensor_without_a_place_or_of_another_shape_stops(encoders, tmp_path):
    _, _, _, root, _, checkpoint = tagger(encoders, "bert")
    state = torch.load(checkpoint, weights_only=False)
    extra = dict(state)
    extra["model"] = {**state["model"],
                      "encoder.sentence_encoder.layer_norm.weight": torch.ones(16)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(AddropError, match=r"encoder\.sentence_encoder\.layer_norm\.weight has no "
                                          r"place in BertForTokenClassification"):
        export_hf(tmp_path / "extra.pt", tmp_path / "out")
    wrong = dict(state)
    key = "encoder.sentence_encoder.layers.1.fc1.weight"
    wrong["model"] = {**state["model"], key: torch.zeros(31, 16)}
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(AddropError, match=rf"{key}: shape \(31, 16\), but BertForTokenClass"
                                          r"ification's bert\.encoder\.layer\.1\.intermediate"):
        export_hf(tmp_path / "wrong.pt", tmp_path / "out")
    # a reference of another size is named, not loaded
    other = tmp_path / "other"
    shutil.copytree(root / "hf", other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "hidden_size": 32}))
    with pytest.raises(AddropError, match=r"config\.json has hidden_size 32, the checkpoint 16"):
        export_hf(checkpoint, tmp_path / "out", reference=other)
    assert not (tmp_path / "out").exists()

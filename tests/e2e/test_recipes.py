"""The fairseq-hydra-train recipes shipped in the package (addrop_fairseq/recipes/*.yaml), run as a
user runs them: through ``addrop-hydra-train --config-name NAME`` (no --config-dir), from a
directory that is not the repository, with ``task.data`` and the checkpoint paths overridden and the model shrunk.
Each trains two updates on one-batch data, so the second update is an AD-DROP epoch."""
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow

TWO_UPDATES = ["optimization.max_update=2", "common.cpu=true", "common.log_interval=1",
               "common.log_format=simple"]


def hydra_train(group: str, name: str, cwd: Path, *overrides: str):
    """(training log, the configuration the run saved in its checkpoint)."""
    save_dir = cwd / "checkpoints"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "addrop_fairseq.cli.hydra_train", "--config-name", name,
               f"checkpoint.save_dir={save_dir}", *TWO_UPDATES, *overrides]
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)}\n{log[-5000:]}"
    state = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    return log, OmegaConf.create(state["cfg"])


def assert_two_updates_second_with_addrop(log: str):
    epochs = re.findall(r"\bepoch (\d+) \| loss [\d.]+ .*?\| addrop (\d) \| addrop_drop ([\d.]+) "
                        r".*?\| num_updates (\d+)", log)
    assert [(e, a, n) for e, a, _, n in epochs] == [("001", "0", "1"), ("002", "1", "2")], log[-3000:]
    assert float(epochs[1][2]) > 0, "AD-DROP dropped no attention position"
    assert "UserWarning" not in log and "FutureWarning" not in log, log  # all filtered


def model_overrides(arguments) -> list:
    """fairseq-train model options (``--arch X --encoder-layers 2 --share-all-embeddings``) as
    hydra overrides (``++model._name=X ++model.encoder_layers=2 ++model.share_all_embeddings=true``: a
    legacy fairseq model has no schema, so an option the recipe does not set must be added)."""
    words, overrides, i = [str(a) for a in arguments], [], 0
    while i < len(words):
        key = words[i][2:].replace("-", "_")
        if i + 1 < len(words) and not words[i + 1].startswith("--"):
            value, i = words[i + 1], i + 2
        else:
            value, i = "true", i + 1
        overrides.append(f"++model.{'_name' if key == 'arch' else key}={value}")
    return overrides


TINY_ROBERTA = ["++model.encoder_layers=2", "++model.encoder_embed_dim=32",
                "++model.encoder_ffn_embed_dim=64", "++model.encoder_attention_heads=4",
                "++model.max_positions=128"]


RECIPES = REPO / "addrop_fairseq" / "recipes"


def test_every_recipe_is_tested():
    recipes = {p.name for p in RECIPES.glob("*.yaml")}
    assert recipes == {
        "quickstart.yaml", "opus_mt_en_ro.yaml", "opus_mt_tr_en.yaml",
        "electra_base.yaml", "minilm.yaml",
        *(f"{t}.yaml" for t in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"))}
    encoders = {p.name for p in (RECIPES / "encoder").glob("*.yaml")}
    assert encoders == {"roberta_base.yaml", "bert_base.yaml"}  # both trained below


def test_user_dir_and_recipes_are_added_unless_given():
    from addrop_fairseq import PLUGIN_DIR
    from addrop_fairseq.cli.hydra_train import RECIPES, with_plugin

    user_dir, recipes = f"common.user_dir={PLUGIN_DIR}", ["--config-dir", str(RECIPES)]
    assert with_plugin(["task.data=x"]) == [*recipes, user_dir, "task.data=x"]
    # the overrides stay one run of positionals, whatever options surround them
    assert with_plugin(["--config-name", "cola", "--cfg", "job", "task.data=x"]) == [
        *recipes, "--config-name", "cola", "--cfg", "job", user_dir, "task.data=x"]
    assert with_plugin(["--config-name", "cola"]) == [*recipes, "--config-name", "cola", user_dir]
    assert with_plugin(["-cd", "mine", "common.user_dir=/elsewhere"]) == [
        "-cd", "mine", "common.user_dir=/elsewhere"]
    assert os.path.isfile(os.path.join(PLUGIN_DIR, "__init__.py"))
    assert (RECIPES / "quickstart.yaml").is_file()


# --- translation ----------------------------------------------------------------------------------

def write_pairs(directory: Path, name: str, pairs, src="en", tgt="ro"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.{src}").write_text("".join(p[0] + "\n" for p in pairs))
    (directory / f"{name}.{tgt}").write_text("".join(p[1] + "\n" for p in pairs))


def test_quickstart_recipe(tmp_path):
    from test_convert_marian import toy_pairs

    raw, data = tmp_path / "raw", tmp_path / "bin"
    write_pairs(raw, "train", toy_pairs(1, 16))
    write_pairs(raw, "valid", toy_pairs(2, 8))
    run_cli("fairseq_cli.preprocess", "-s", "en", "-t", "ro", "--joined-dictionary",
            "--trainpref", raw / "train", "--validpref", raw / "valid", "--destdir", data,
            "--workers", "1")
    log, cfg = hydra_train("translation", "quickstart", tmp_path / "elsewhere", f"task.data={data}")
    assert_two_updates_second_with_addrop(log)
    assert (cfg.model.encoder_layers, cfg.model.encoder_embed_dim, cfg.optimization.lr) == (2, 128, [0.002])
    assert (cfg.criterion.addrop_p, cfg.criterion.addrop_q, cfg.task.addrop_schedule) == (0.3, 0.3, "cross")
    assert (tmp_path / "elsewhere" / "checkpoints" / "hydra" / "config.yaml").is_file()


@pytest.fixture(scope="module")
def tiny_opus_mt(tmp_path_factory):
    """Tiny untrained MarianMT models converted as OPUS-MT ones are, for en-ro and tr-en."""
    from test_convert_marian import write_marian_dir

    from addrop_fairseq.convert.marian import convert_marian

    root = tmp_path_factory.mktemp("opus")
    write_marian_dir(root / "hf")
    return {("en", "ro"): convert_marian(root / "hf", root / "en-ro"),
            ("tr", "en"): convert_marian(root / "hf", root / "tr-en", "tr", "en")}


@pytest.mark.parametrize("src, tgt, p, q", [("en", "ro", 0.2, 0.2), ("tr", "en", 0.6, 0.1)])
def test_opus_mt_recipes(tiny_opus_mt, tmp_path, src, tgt, p, q):
    from test_convert_marian import toy_pairs

    from addrop_fairseq.convert.marian import encode_file

    conversion = tiny_opus_mt[(src, tgt)]
    raw, encoded, data = tmp_path / "raw", tmp_path / "spm", tmp_path / "bin"
    for name, pairs in (("train", toy_pairs(1, 16)), ("valid", toy_pairs(2, 8))):
        write_pairs(raw, name, pairs, src, tgt)
        for lang, spm_model in ((src, conversion.source_spm), (tgt, conversion.target_spm)):
            encode_file(spm_model, raw / f"{name}.{lang}", encoded / f"{name}.{lang}")
    run_cli("fairseq_cli.preprocess", "-s", src, "-t", tgt, "--trainpref", encoded / "train",
            "--validpref", encoded / "valid", "--srcdict", conversion.dictionaries[src],
            "--tgtdict", conversion.dictionaries[tgt], "--destdir", data, "--workers", "1")
    # the tiny model's sizes replace the published model's; everything else is the recipe's
    log, cfg = hydra_train("translation", f"opus_mt_{src}_{tgt}", tmp_path / "elsewhere",
                           f"task.data={data}", f"checkpoint.finetune_from_model={conversion.checkpoint}",
                           *model_overrides(conversion.model_arguments))
    assert_two_updates_second_with_addrop(log)
    assert re.search(r"Loaded checkpoint .*model\.pt", log)
    assert re.search(r"valid on 'valid' subset .*\| bleu [\d.]+", log)  # --eval-bleu, beam 4
    c = cfg.criterion
    assert (c.addrop_p, c.addrop_q, c.addrop_modules, c.addrop_layers) == (p, q, "encoder_self", "all")
    assert (cfg.optimization.lr, cfg.optimization.max_epoch) == ([2e-5], 5)
    assert (cfg.task.source_lang, cfg.task.target_lang) == (src, tgt)


# --- NER ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("recipe, lr, epochs", [("electra_base", 2e-5, 9), ("minilm", 5e-5, 2)])
def test_ner_recipes(tmp_path, recipe, lr, epochs):
    from test_ner_fixtures import prepare, roberta_checkpoint, tagging_setup, write_corpus

    data = prepare(write_corpus(tmp_path / "conll", train=24, valid=8, test=8), tmp_path / "bin",
                   "--tokenizer", "whitespace")
    task, _, _ = tagging_setup(data, "--encoder-layers", "2", "--encoder-embed-dim", "32",
                               "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "4",
                               "--max-positions", "128", arch="addrop_roberta_tagger")
    pretrained = tmp_path / "encoder.pt"
    roberta_checkpoint(task, pretrained)
    log, cfg = hydra_train("ner", recipe, tmp_path / "elsewhere", f"task.data={data}",
                           f"checkpoint.finetune_from_model={pretrained}", *TINY_ROBERTA)
    assert_two_updates_second_with_addrop(log)
    assert "starting a new tagging head" in log and re.search(r"\| f1 [\d.]+", log)
    assert (cfg.criterion.addrop_p, cfg.criterion.addrop_q, cfg.criterion.addrop_layers) == (0.8, 0.1, "all")
    assert (cfg.optimization.lr, cfg.optimization.max_epoch, cfg.dataset.batch_size) == ([lr], epochs, 32)


# --- GLUE -----------------------------------------------------------------------------------------

# the paper (section 3.2): AD-DROP in the first layer for SST-2, MNLI, QNLI, QQP and STS-B, in all
# layers for CoLA, MRPC and RTE
GLUE_LAYERS = {"sst2": "0", "mnli": "0", "qnli": "0", "qqp": "0", "stsb": "0",
               "cola": "all", "mrpc": "all", "rte": "all"}
GLUE_METRIC = {"cola": "mcc", "stsb": "pearson"}


def write_glue(name: str, dest: Path, sizes=(("train", 16), ("valid", 8), ("valid1", 8))) -> Path:
    """A few rows of task ``name`` in the GLUE distribution's TSV layout."""
    from addrop_fairseq.data import glue

    task, rng = glue.get_task(name), random.Random(0)
    words = "river mountain forest desert ocean valley island meadow golden red blue".split()
    dest.mkdir(parents=True, exist_ok=True)
    for split, count in sizes:
        if split not in task.tsv_files:
            continue
        columns = list(task.headerless_labelled or ("index", *task.text_columns, task.label_column))
        lines = [] if task.headerless_labelled else ["\t".join(columns)]
        for i in range(count):
            label = task.labels[i % len(task.labels)] if task.labels else f"{rng.uniform(0, 5):.2f}"
            row = {"index": str(i), "source": "src", "original_label": "", task.label_column: label}
            row.update({c: " ".join(rng.sample(words, 5)) for c in task.text_columns})
            lines.append("\t".join(row.get(c, "") for c in columns))
        (dest / task.tsv_files[split]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def glue_tokenizer(tmp_path_factory):
    from test_glue_data import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("glue") / "tok")


@pytest.mark.parametrize("name", sorted(GLUE_LAYERS))
def test_glue_recipes(tmp_path, glue_tokenizer, name):
    from fairseq.data import Dictionary
    from test_glue_data import prepare_glue
    from test_ner_fixtures import roberta_checkpoint

    data = tmp_path / "bin"
    prepare_glue.main(["--task", name, "--input", str(write_glue(name, tmp_path / "raw")),
                       "--dest", str(data), "--hf-tokenizer", str(glue_tokenizer)])
    dictionary = Dictionary.load(str(data / "input0" / "dict.txt"))
    dictionary.add_symbol("<mask>")  # as fairseq's sentence_prediction task does
    pretrained = tmp_path / "roberta.pt"
    roberta_checkpoint(type("Task", (), {"source_dictionary": dictionary})(), pretrained)
    log, cfg = hydra_train("glue", name, tmp_path / "elsewhere", f"task.data={data}",
                           f"checkpoint.finetune_from_model={pretrained}", *TINY_ROBERTA,
                           "task.max_positions=128")
    assert_two_updates_second_with_addrop(log)
    assert cfg.criterion.addrop_layers == GLUE_LAYERS[name]
    assert cfg.checkpoint.best_checkpoint_metric == GLUE_METRIC.get(name, "accuracy")
    assert (cfg.optimization.lr, cfg.dataset.batch_size, cfg.model._name) == ([1e-5], 16, "roberta_base")
    metric = GLUE_METRIC.get(name, "accuracy")
    assert re.search(rf"valid on 'valid' subset .*\| {metric} [\d.-]+", log), log[-3000:]
    if name == "mnli":
        assert re.search(r"valid on 'valid1' subset .*\| accuracy [\d.]+", log)
    assert cfg.criterion.regression_target == (name == "stsb")

    if name in ("cola", "stsb", "mnli"):  # fairseq-validate prints the task's metric, as training did
        subsets = "valid,valid1" if name == "mnli" else "valid"
        validated = run_cli("fairseq_cli.validate", data, "--user-dir", REPO / "addrop_fairseq",
                            "--task", "addrop_sentence_prediction", "--cpu", "--batch-size", "4",
                            "--valid-subset", subsets, "--path",
                            tmp_path / "elsewhere" / "checkpoints" / "checkpoint_best.pt")
        output = validated.stdout + validated.stderr
        best = float(re.findall(rf"\| best_{metric} ([\d.-]+)", log)[-1])
        scored = re.search(rf"valid on 'valid' subset \|.* \| {metric} ([\d.-]+)", output)
        assert scored and float(scored.group(1)) == pytest.approx(best, abs=1e-3), output[-3000:]
        if name == "mnli":
            assert re.search(r"valid on 'valid1' subset \|.* \| accuracy [\d.]+", output)


def test_glue_recipe_with_the_bert_encoder(tmp_path, glue_tokenizer):
    """encoder=bert_base: a converted BERT (addrop_hf_encoder, [CLS] A [SEP] B [SEP]), lr 2e-5."""
    from fairseq.data import Dictionary
    from test_glue_data import prepare_glue
    from test_ner_fixtures import roberta_checkpoint

    data = tmp_path / "bin"
    prepare_glue.main(["--task", "rte", "--input", str(write_glue("rte", tmp_path / "raw")),
                       "--dest", str(data), "--hf-tokenizer", str(glue_tokenizer),
                       "--layout", "bert"])
    dictionary = Dictionary.load(str(data / "input0" / "dict.txt"))
    dictionary.add_symbol("<mask>")
    pretrained = tmp_path / "bert.pt"  # addrop_hf_encoder has RoBERTa's parameters
    roberta_checkpoint(type("Task", (), {"source_dictionary": dictionary})(), pretrained)
    log, cfg = hydra_train("glue", "rte", tmp_path / "elsewhere", "encoder=bert_base",
                           f"task.data={data}", f"checkpoint.finetune_from_model={pretrained}",
                           *TINY_ROBERTA, "task.max_positions=128")
    assert_two_updates_second_with_addrop(log)
    assert "prepared for" not in log  # the special tokens match the data's BERT layout
    assert (cfg.model._name, cfg.model.layernorm_eps, cfg.optimization.lr) == ("addrop_hf_encoder", 1e-12, [2e-5])
    assert (cfg.task.init_token, cfg.task.separator_token, cfg.criterion.addrop_layers) == (0, None, "all")

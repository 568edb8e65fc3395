"""Tiny trained checkpoints of the three tasks, written as fairseq writes them (no tests here).

Built in-process (parse the training options, build task/model/criterion through fairseq's
registries, a few dozen Adam steps of plain training, save), so the analysis tests can load them
the way the scripts do, through ``checkpoint_utils.load_model_ensemble_and_task``.
"""
import random
from pathlib import Path

import torch

from conftest import REPO  # noqa: E402,F401
PLUGIN = str(REPO / "addrop_fairseq")

TRANSLATION = ["--task", "addrop_translation", "--arch", "addrop_transformer",
               "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
               "--share-all-embeddings", "--encoder-layers", "2", "--decoder-layers", "2",
               "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
               "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
               "--encoder-attention-heads", "4", "--decoder-attention-heads", "4"]
TAGGING = ["--task", "addrop_tagging", "--criterion", "addrop_tagging",
           "--arch", "addrop_tagger_tiny"]
GLUE = ["--task", "addrop_sentence_prediction", "--criterion", "addrop_sentence_prediction",
        "--init-token", "0", "--separator-token", "2", "--arch", "roberta_base",
        "--encoder-layers", "2", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--max-positions", "64", "--pooler-dropout", "0"]
COMMON = ["--cpu", "--seed", "1", "--dropout", "0.1", "--attention-dropout", "0.1",
          "--addrop-p", "0.3", "--addrop-q", "0.3"]


def build(data, options):
    from fairseq import options as fairseq_options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = fairseq_options.get_training_parser()
    args = fairseq_options.parse_args_and_arch(
        parser, [str(data), "--user-dir", PLUGIN, *COMMON, *options])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    return cfg, task, model, criterion


def train_briefly(task, model, criterion, steps=40, batch_size=16, lr=3e-3):
    """Plain training steps (no AD-DROP phase is set), so that predictions are not random."""
    task.load_dataset("train")
    iterator = task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=batch_size,
                                       seed=1, num_workers=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    done = 0
    while done < steps:
        for sample in iterator.next_epoch_itr(shuffle=True):
            loss, sample_size, _ = criterion(model, sample)
            optimizer.zero_grad()
            (loss / max(sample_size, 1)).backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    model.eval()


def save(cfg, model, path: Path) -> Path:
    from omegaconf import OmegaConf

    state = {"args": None, "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
             "model": model.state_dict(), "criterion": None, "task_state": {},
             "extra_state": {"epoch": 1},
             "optimizer_history": [{"criterion_name": "x", "optimizer_name": "x",
                                    "lr_scheduler_state": {"best": None}, "num_updates": 0}],
             "last_optimizer_state": None}
    torch.save(state, path)
    return path


def write_translation_data(dest: Path, sizes=(("train", 200), ("valid", 24)), seed=0) -> Path:
    """Binarized en-ro data for a made-up task: the target is the source reversed."""
    from fairseq.data import Dictionary, indexed_dataset

    dest.mkdir(parents=True, exist_ok=True)
    dictionary = Dictionary()
    for index in range(20):
        dictionary.add_symbol(f"w{index}")
    for lang in ("en", "ro"):
        dictionary.save(str(dest / f"dict.{lang}.txt"))
    rng = random.Random(seed)
    for split, count in sizes:
        sentences = [[rng.randrange(dictionary.nspecial, len(dictionary))
                      for _ in range(rng.randint(3, 9))] for _ in range(count)]
        for lang, order in (("en", 1), ("ro", -1)):
            prefix = str(dest / f"{split}.en-ro.{lang}")
            builder = indexed_dataset.make_builder(prefix + ".bin", impl="mmap",
                                                   vocab_size=len(dictionary))
            for words in sentences:
                builder.add_item(torch.IntTensor(words[::order] + [dictionary.eos()]))
            builder.finalize(prefix + ".idx")
    return dest


def translation_checkpoint(work: Path):
    data = write_translation_data(work / "translation-data")
    cfg, task, model, criterion = build(data, TRANSLATION)
    train_briefly(task, model, criterion, steps=60)
    return save(cfg, model, work / "translation.pt"), data


def tagging_checkpoint(work: Path):
    from test_ner_fixtures import prepared_corpus

    data = prepared_corpus(work / "ner")
    cfg, task, model, criterion = build(data, TAGGING)
    train_briefly(task, model, criterion, steps=60)
    return save(cfg, model, work / "tagging.pt"), data


def glue_checkpoint(work: Path):
    from test_glue_data import make_tokenizer, prepare_glue, write_mrpc

    raw = write_mrpc(work / "mrpc-raw", sizes=(96, 40, 8))
    (raw / "test.tsv").unlink()
    data = work / "mrpc-bin"
    prepare_glue.main(["--task", "mrpc", "--input", str(raw), "--dest", str(data),
                       "--hf-tokenizer", str(make_tokenizer(work / "tok")), "--max-len", "32"])
    cfg, task, model, criterion = build(data, GLUE)
    train_briefly(task, model, criterion, steps=40)
    return save(cfg, model, work / "glue.pt"), data

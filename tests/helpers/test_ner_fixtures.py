"""Small CoNLL corpora and in-memory taggers shared by the NER tests (no tests here)."""
import argparse
import importlib
import random
from pathlib import Path

from conftest import REPO  # noqa: E402,F401

PEOPLE = ["John Smith", "Maria Garcia", "Wei Chen", "Anna Berg", "Peter Blackburn", "Ole Nordmann",
          "Fatima Zahra", "Jan Kowalczyk"]
PLACES = ["Paris", "New York", "Berlin", "Tokyo", "Lake Zurich", "Sao Paulo", "Oslo", "Nairobi"]
ORGS = ["Acme Corp", "United Nations", "Reuters", "Deutsche Bahn", "Red Cross", "Nokia"]
TEMPLATES = [
    "{PER} met {PER} in {LOC} on Monday .",
    "{ORG} said {PER} will visit {LOC} next week .",
    "Shares of {ORG} rose 3.5 percent in {LOC} trading .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Rain fell in {LOC} and {LOC} overnight .",
]


def make_sentences(count: int, seed: int):
    """Sentences of (word, BIO2 tag) with multi-word entities of three types."""
    rng = random.Random(seed)
    pools = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    sentences = []
    for _ in range(count):
        words, tags = [], []
        for part in rng.choice(TEMPLATES).split():
            if part.startswith("{"):
                kind = part[1:-1]
                entity = rng.choice(pools[kind]).split()
                words += entity
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1)
            else:
                words.append(part)
                tags.append("O")
        sentences.append(list(zip(words, tags)))
    return sentences


def to_iob1(tags):
    """BIO2 -> IOB1 (I-X opens an entity unless it directly follows another X entity)."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and previous[2:] != tag[2:]:
            out.append("I-" + tag[2:])
        else:
            out.append(tag)
        previous = tag
    return out


def write_conll2003(path: Path, sentences, iob1: bool = True) -> None:
    """The original 4-column layout: word POS chunk NER, -DOCSTART- lines, blank lines."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for number, sentence in enumerate(sentences):
        tags = [t for _, t in sentence]
        tags = to_iob1(tags) if iob1 else tags
        for (word, _), tag in zip(sentence, tags):
            lines.append(f"{word} NNP B-NP {tag}")
        lines.append("")
        if number % 7 == 6:
            lines += ["-DOCSTART- -X- -X- O", ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_corpus(directory: Path, train=160, valid=40, test=40) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 1), ("valid", valid, 2), ("test", test, 3)):
        write_conll2003(directory / f"{split}.txt", make_sentences(count, seed))
    return directory


def load_script(name: str):
    return importlib.import_module(f"addrop_fairseq.cli.{name}")


def prepare(source: Path, dest: Path, *options: str) -> Path:
    load_script("prepare_conll2003").main(["--conll-dir", str(source), "--dest", str(dest), *options])
    return dest


def prepared_corpus(tmp_path: Path, *options: str) -> Path:
    source = write_corpus(tmp_path / "conll")
    return prepare(source, tmp_path / "data", *(options or ("--vocab-size", "400")))


def tagging_setup(data: Path, *extra: str, arch: str = "addrop_tagger_tiny"):
    """(task, model, criterion) exactly as fairseq-train would build them."""
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", str(REPO / "addrop_fairseq"), "--task", "addrop_tagging",
        "--arch", arch, "--criterion", "addrop_tagging", "--cpu", "--dropout", "0",
        "--attention-dropout", "0", *extra])
    task = tasks.setup_task(args)
    for split in ("train", "valid"):
        task.load_dataset(split)
    model = task.build_model(args)
    criterion = task.build_criterion(args)
    return task, model, criterion


def batch(task, split: str, indices):
    dataset = task.dataset(split)
    return dataset.collater([dataset[i] for i in indices])


def roberta_checkpoint(task, path):
    """A fairseq RoBERTa (the `roberta` model class, random weights) saved as fairseq saves one."""
    import torch
    from fairseq.models.roberta import RobertaModel

    args = argparse.Namespace(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                              encoder_attention_heads=4, max_positions=128)
    torch.manual_seed(1)
    roberta = RobertaModel.build_model(args, task)
    state = {"args": None, "cfg": None, "model": roberta.state_dict(), "extra_state": {"epoch": 1},
             "optimizer_history": [{"criterion_name": "MaskedLmLoss", "optimizer_name": "FairseqAdam",
                                    "lr_scheduler_state": {"best": None}, "num_updates": 0}],
             "last_optimizer_state": None}
    torch.save(state, path)
    return roberta.eval()

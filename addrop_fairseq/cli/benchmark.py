"""What AD-DROP costs per training step, measured on fairseq's real training step.

One process builds one ``addrop_transformer`` through fairseq (task ``addrop_translation``,
criterion ``addrop_label_smoothed_cross_entropy``, fairseq's Adam, fp16/bf16 through fairseq's
FP16Optimizer) and times one update for every variant: ``task.train_step`` (forward and
backward), the gradient-norm computation and ``optimizer.step()``, as fairseq's Trainer runs
them. The variants share the model, the optimizer and the batch, and are interleaved over the
repetitions (the order rotates every repetition) so that drift of the machine hits them alike;
the table reports medians.

Variants: the plain step (fairseq's own ``label_smoothed_cross_entropy``); the AD-DROP criterion
in a plain epoch of cross-tuning; AD-DROP with GA on layer 0, the encoder, the decoder, both
self-attention stacks, and all three attention kinds; AA; RD; IGA (``--iga-steps``); and the
official code's scheme, re-implemented here as the reference (one ``torch.autograd.grad`` per
layer with ``retain_graph=True``, sort-based masks, the first pass's graph alive until the
second pass's backward is done).

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` over one step (everything allocated:
model, optimizer state, activations). On CPU there is no allocator statistic, so one extra step
per variant runs under ``torch.profiler`` with ``profile_memory=True``: its allocation events
carry the CPU allocator's running total of live bytes, whose maximum minus its value at the
start of the step is the step's peak working memory (activations, gradients, temporaries); the
table adds the bytes of the tensors alive before the step (parameters, optimizer state, batch)
to give the peak total. Both exclude memory outside torch's allocator (Python objects, the
interpreter, the profiler's own buffers).

    addrop-benchmark --preset cpu --output /tmp/bench-cpu
    addrop-benchmark --preset base --device cuda --dtype bf16 --output bench-base

Sequence-length sweep at constant tokens per batch (one model and batch per length):

    addrop-benchmark --preset cpu --sweep 32,64,128,256,512 --sweep-tokens 512 \
        --variants plain,ga-all,rd,official-ga-all --threads 1 --clock cpu --output /tmp/sweep
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import torch
from addrop_fairseq.cli.policy import run

from addrop_fairseq import PLUGIN_DIR as PLUGIN

# the checkout whose commit a benchmark records (none for an installed wheel)
REPO = Path(PLUGIN).parent

PRESETS = {
    # sized so that the whole default run takes a few minutes on 2 CPU cores
    "cpu": dict(embed_dim=256, ffn_dim=1024, heads=4, encoder_layers=3, decoder_layers=3,
                vocab=4000, batch_size=16, seq_len=40, reps=20, warmup=2, iga_steps=20),
    # transformer-base (Vaswani et al. 2017), a 4k-token batch: meant for a GPU
    "base": dict(embed_dim=512, ffn_dim=2048, heads=8, encoder_layers=6, decoder_layers=6,
                 vocab=32000, batch_size=64, seq_len=64, reps=20, warmup=3, iga_steps=20),
}

SELF_ATTENTION = "encoder_self,decoder_self"
ALL_ATTENTION = "encoder_self,decoder_self,encoder_decoder"


@dataclass
class Variant:
    name: str
    description: str
    runner: str  # plain | addrop | official
    attribution: str = "ga"
    layers: str = "all"
    modules: str = SELF_ATTENTION
    addrop_epoch: bool = True  # False: the AD-DROP criterion in a plain epoch of cross-tuning


def variants(iga_steps: int) -> List[Variant]:
    return [
        Variant("plain", "fairseq label_smoothed_cross_entropy, normal step", "plain"),
        Variant("addrop-off", "AD-DROP criterion, plain epoch of cross-tuning", "addrop",
                addrop_epoch=False),
        Variant("ga-layer0", "GA, layer 0, encoder+decoder self-attention", "addrop", layers="0"),
        Variant("ga-encoder", "GA, all layers, encoder self-attention", "addrop",
                modules="encoder_self"),
        Variant("ga-decoder", "GA, all layers, decoder self-attention", "addrop",
                modules="decoder_self"),
        Variant("ga-all", "GA, all layers, encoder+decoder self-attention", "addrop"),
        Variant("ga-all-cross", "GA, all layers, all attention incl. encoder-decoder", "addrop",
                modules=ALL_ATTENTION),
        Variant("aa", "AA, all layers, encoder+decoder self-attention", "addrop",
                attribution="aa"),
        Variant("rd", "RD, all layers, encoder+decoder self-attention", "addrop",
                attribution="rd"),
        Variant("iga", f"IGA m={iga_steps}, all layers, encoder+decoder self-attention",
                "addrop", attribution="iga"),
        Variant("official-ga-layer0", "official scheme, GA, layer 0, enc+dec self-attention",
                "official", layers="0"),
        Variant("official-ga-all", "official scheme, GA, all layers, enc+dec self-attention",
                "official"),
    ]


# --------------------------------------------------------------------------- setup


def write_dictionary(path: Path, size: int) -> None:
    # fairseq adds its 4 special symbols itself
    path.write_text("".join(f"w{i} {size - i}\n" for i in range(size - 4)), encoding="utf-8")


def fairseq_argv(args, data_dir: Path) -> List[str]:
    argv = [
        str(data_dir), "--user-dir", str(PLUGIN), "--task", "addrop_translation",
        "--source-lang", "src", "--target-lang", "tgt", "--addrop-schedule", "cross",
        "--arch", "addrop_transformer", "--share-decoder-input-output-embed",
        "--encoder-embed-dim", str(args.embed_dim), "--decoder-embed-dim", str(args.embed_dim),
        "--encoder-ffn-embed-dim", str(args.ffn_dim), "--decoder-ffn-embed-dim", str(args.ffn_dim),
        "--encoder-attention-heads", str(args.heads), "--decoder-attention-heads", str(args.heads),
        "--encoder-layers", str(args.encoder_layers), "--decoder-layers", str(args.decoder_layers),
        "--dropout", "0.1", "--max-source-positions", str(max(args.seq_len, 1024)),
        "--max-target-positions", str(max(args.seq_len, 1024)),
        "--criterion", "addrop_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--addrop-p", str(args.p), "--addrop-q", str(args.q),
        "--addrop-iga-steps", str(args.iga_steps),
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "1e-5",
        "--seed", str(args.seed),
    ]
    if args.device == "cpu":
        argv.append("--cpu")
    if args.dtype == "fp16":
        argv.append("--fp16")
    elif args.dtype == "bf16":
        argv.append("--bf16")
    return argv


def make_batch(task, args, device):
    """One collated batch of random sentences; lengths vary so that padding is exercised."""
    from fairseq import utils
    from fairseq.data import LanguagePairDataset

    generator = torch.Generator().manual_seed(args.seed)
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary

    def sentences(dictionary):
        lengths = torch.randint(max(2, (3 * args.seq_len) // 4), args.seq_len + 1,
                                (args.batch_size,), generator=generator)
        out = []
        for n in lengths.tolist():
            tokens = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=generator)
            tokens[-1] = dictionary.eos()
            out.append(tokens)
        return out

    src, tgt = sentences(src_dict), sentences(tgt_dict)
    dataset = LanguagePairDataset(src, [len(s) for s in src], src_dict,
                                  tgt, [len(t) for t in tgt], tgt_dict)
    sample = dataset.collater([dataset[i] for i in range(len(src))])
    return utils.move_to_cuda(sample, device) if device.type == "cuda" else sample


@dataclass
class Bench:
    args: argparse.Namespace
    cfg: object
    task: object
    model: torch.nn.Module
    optimizer: object
    sample: dict
    device: torch.device
    criteria: Dict[str, object] = field(default_factory=dict)
    update: int = 0


def build(args) -> Bench:
    from fairseq import options, optim, tasks
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    with tempfile.TemporaryDirectory(prefix="addrop-bench-") as tmp:
        # the task reads its dictionaries at set-up and never touches the directory again
        write_dictionary(Path(tmp) / "dict.src.txt", args.vocab)
        write_dictionary(Path(tmp) / "dict.tgt.txt", args.vocab)
        parser = options.get_training_parser()
        cfg = convert_namespace_to_omegaconf(
            options.parse_args_and_arch(parser, fairseq_argv(args, Path(tmp))))
        task = tasks.setup_task(cfg.task)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = task.build_model(cfg.model)
    if args.dtype == "fp16":
        model = model.half()
    elif args.dtype == "bf16":
        model = model.bfloat16()
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.dtype in ("fp16", "bf16"):
        optimizer = optim.FP16Optimizer.build_optimizer(cfg, params)
    else:
        optimizer = optim.build_optimizer(cfg.optimizer, params)
    bench = Bench(args, cfg, task, model, optimizer, make_batch(task, args, device), device)
    for variant in variants(args.iga_steps):
        if variant.runner == "plain":
            criterion = LabelSmoothedCrossEntropyCriterion(
                task, cfg.criterion.sentence_avg, cfg.criterion.label_smoothing)
        else:
            criterion_cfg = copy.deepcopy(cfg.criterion)
            criterion_cfg.addrop_attribution = variant.attribution
            criterion_cfg.addrop_layers = variant.layers
            criterion_cfg.addrop_modules = variant.modules
            criterion = task.build_criterion(criterion_cfg)
        bench.criteria[variant.name] = criterion.to(device)
    return bench


# --------------------------------------------------------------------------- one step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finish_update(bench: Bench) -> None:
    """What fairseq's Trainer does after the backward: the gradient norm, then the step."""
    try:
        bench.optimizer.clip_grad_norm(0.0)
        bench.optimizer.step()
    except OverflowError:  # fp16 loss-scale overflow: the Trainer skips the update
        pass


def addrop_step(bench: Bench, variant: Variant) -> None:
    # the task decides the phase from its epoch: even epochs are AD-DROP ones under cross-tuning
    bench.task.begin_epoch(2 if variant.addrop_epoch else 1, bench.model)
    bench.task.train_step(bench.sample, bench.model, bench.criteria[variant.name],
                          bench.optimizer, bench.update)
    finish_update(bench)


def official_step(bench: Bench, variant: Variant) -> None:
    """The official code's scheme (github.com/TaoYang225/AD-DROP, trainer.py + utils.py).

    Kept as it is there: the first forward's graph stays referenced through the second forward
    and its backward; one ``autograd.grad(..., retain_graph=True)`` per masked layer; masks from
    a full sort of every row, a one-hot threshold pick and ``torch.bernoulli``, as int64.
    """
    from addrop_fairseq.modules.attention import maskable_attention, attention_mode
    from addrop_fairseq.config import select_modules

    criterion, model, sample = bench.criteria[variant.name], bench.model, bench.sample
    modules = select_modules(maskable_attention(model), variant.modules, variant.layers)
    settings = criterion.addrop_settings
    model.train()
    model.set_num_updates(bench.update)
    with attention_mode(modules, "record"):
        first = model(**sample["net_input"])
    attention = [m.recorded for m in modules]
    valid = [m.valid for m in modules]
    for m in modules:
        m.recorded = None
    target = criterion.attribution_target(model, sample, first)(first)
    drops = []
    for probs, keys in zip(attention, valid):
        (grad,) = torch.autograd.grad(target.view(-1), probs, retain_graph=True)
        drops.append(official_drop_mask(grad, keys, settings.p, settings.q))
    with attention_mode(modules, "apply", drop_fns=[lambda _valid, d=d: d for d in drops]):
        second = model(**sample["net_input"])
    loss, _ = criterion.compute_loss(model, second, sample, reduce=True)
    bench.optimizer.backward(loss)
    finish_update(bench)
    del first, attention, target  # only now, as in the official loop


def official_drop_mask(grad, valid, p: float, q: float) -> torch.Tensor:
    """``generate_mask_high`` of the official utils.py, per query row (causal rows differ in
    length here) and returned as this package's drop mask (True = -inf)."""
    extended = valid.expand_as(grad).long()
    length = valid.sum(-1)  # [B, 1, T]
    keep_count = ((1 - p) * length).long()
    onehot = torch.eye(grad.size(-1), device=grad.device)[keep_count]  # [B, 1, T, S]
    shifted = grad + (1 - extended) * 100
    ordered = torch.sort(shifted, dim=-1)[0]
    threshold = torch.sum(onehot * ordered, dim=-1).unsqueeze(-1)
    kept_region = (1 - torch.ge(shifted, threshold).long()) * extended
    sampled = torch.bernoulli((1 - q) * torch.ones_like(kept_region, dtype=grad.dtype))
    keep = ((kept_region + sampled) >= 1).long() * extended
    drop = (extended - keep).bool()
    # the official code adds -10000 rather than -inf, so a fully dropped row (one valid key
    # that is also the only candidate) stays finite there; keep such rows whole here
    return drop & ~(drop == extended.bool()).all(-1, keepdim=True)


def plain_step(bench: Bench, variant: Variant) -> None:
    bench.task.train_step(bench.sample, bench.model, bench.criteria[variant.name],
                          bench.optimizer, bench.update)
    finish_update(bench)


RUNNERS: Dict[str, Callable[[Bench, Variant], None]] = {
    "plain": plain_step, "addrop": addrop_step, "official": official_step}


def run_step(bench: Bench, variant: Variant):
    """(wall seconds, process CPU seconds) of one update."""
    bench.optimizer.zero_grad()
    synchronize(bench.device)
    wall, cpu = time.perf_counter(), time.process_time()
    RUNNERS[variant.runner](bench, variant)
    synchronize(bench.device)
    bench.update += 1
    return time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- memory


def resident_bytes(bench: Bench) -> int:
    """Bytes of the tensors alive between steps: parameters (and fp32 copies), optimizer
    state, the batch. Storages are counted once however many tensors view them."""
    storages = {}

    def add(x):
        if torch.is_tensor(x):
            storages[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
            if x.is_leaf and x.grad is not None:
                add(x.grad)
        elif isinstance(x, dict):
            for value in x.values():
                add(value)
        elif isinstance(x, (list, tuple)):
            for value in x:
                add(value)

    add(list(bench.model.parameters()) + list(bench.model.buffers()))
    add(getattr(bench.optimizer, "fp32_params", None))  # FP16Optimizer's master copy
    inner = getattr(bench.optimizer, "fp32_optimizer", bench.optimizer)
    add(list(inner.optimizer.state.values()))
    add(bench.sample)
    storages.pop(0, None)  # empty storages
    return sum(storages.values())


def cpu_step_peak(bench: Bench, variant: Variant) -> int:
    """Peak live bytes of torch's CPU allocator during one step, above its start."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    bench.optimizer.zero_grad()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        RUNNERS[variant.runner](bench, variant)
    bench.update += 1
    allocations = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            allocations.append(node)
    if not allocations:
        raise RuntimeError("torch.profiler recorded no CPU allocations")
    allocations.sort(key=lambda n: n.start_time_ns)
    start = allocations[0].extra_fields.total_allocated - allocations[0].extra_fields.alloc_size
    return max(n.extra_fields.total_allocated for n in allocations) - start


def cuda_peak(bench: Bench, variant: Variant):
    bench.optimizer.zero_grad()
    torch.cuda.synchronize(bench.device)
    torch.cuda.reset_peak_memory_stats(bench.device)
    before = torch.cuda.memory_allocated(bench.device)
    RUNNERS[variant.runner](bench, variant)
    torch.cuda.synchronize(bench.device)
    bench.update += 1
    peak = torch.cuda.max_memory_allocated(bench.device)
    return peak - before, peak


def measure_memory(bench: Bench, selected: List[Variant]) -> Dict[str, dict]:
    out = {}
    for variant in selected:
        if bench.device.type == "cuda":
            step, total = cuda_peak(bench, variant)
        else:
            resident = resident_bytes(bench)
            step = cpu_step_peak(bench, variant)
            total = resident + step
        out[variant.name] = {"step_peak_bytes": step, "peak_bytes": total}
    return out


# --------------------------------------------------------------------------- report


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}
    try:
        import fairseq
        info["fairseq"] = fairseq.__version__
    except Exception:  # the version is a courtesy in the report
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return info


def summarize(times: Dict[str, List[float]], memory: Dict[str, dict],
              selected: List[Variant]) -> List[dict]:
    median = {name: statistics.median(ts) for name, ts in times.items()}
    plain = median.get("plain")
    off = median.get("addrop-off", plain)
    plain_mem = memory.get("plain", {})
    rows = []
    for variant in selected:
        ts = sorted(times[variant.name])
        q1, q3 = ts[len(ts) // 4], ts[(3 * len(ts)) // 4]
        row = {"variant": variant.name, "description": variant.description,
               "median_ms": 1000 * median[variant.name],
               "spread": (q3 - q1) / median[variant.name] if median[variant.name] else 0.0,
               "repetitions": len(ts)}
        if plain:
            row["time_ratio"] = median[variant.name] / plain
            if variant.runner != "plain" and variant.addrop_epoch:
                # cross-tuning alternates a plain epoch (the criterion's inactive path) with this
                row["cross_tuned_pair_ratio"] = (off + median[variant.name]) / (2 * plain)
        mem = memory.get(variant.name)
        if mem:
            row.update(mem)
            if plain_mem:
                row["memory_ratio"] = mem["peak_bytes"] / plain_mem["peak_bytes"]
                row["step_memory_ratio"] = mem["step_peak_bytes"] / plain_mem["step_peak_bytes"]
        rows.append(row)
    return rows


def markdown_table(rows: List[dict]) -> str:
    head = ("| variant | median ms | spread | time / plain | cross-tuned pair / plain "
            "| peak MB | peak / plain | step peak MB | step peak / plain |")
    lines = [head, "|" + "---|" * 9]

    def fmt(row, key, spec):
        return format(row[key], spec) if key in row else "-"

    for row in rows:
        mb = {k: row[k] / 2**20 for k in ("peak_bytes", "step_peak_bytes") if k in row}
        lines.append(
            f"| {row['variant']} | {row['median_ms']:.1f} | {100 * row['spread']:.0f}% "
            f"| {fmt(row, 'time_ratio', '.2f')}x | "
            + (f"{row['cross_tuned_pair_ratio']:.2f}x" if "cross_tuned_pair_ratio" in row else "-")
            + f" | {mb.get('peak_bytes', float('nan')):.1f} | {fmt(row, 'memory_ratio', '.2f')}x"
            f" | {mb.get('step_peak_bytes', float('nan')):.1f} "
            f"| {fmt(row, 'step_memory_ratio', '.2f')}x |")
    lines.append("")
    lines.extend(f"- `{row['variant']}`: {row['description']}" for row in rows)
    return "\n".join(lines)


def memory_note(device: str) -> str:
    if device == "cuda":
        return ("peak = torch.cuda.max_memory_allocated over one step (model, optimizer state, "
                "activations); step peak = that minus what was allocated when the step began.")
    return ("step peak = maximum of torch's CPU allocator live-byte total during one step "
            "(torch.profiler, profile_memory=True) minus its value at the step's start: "
            "activations, gradients, temporaries; peak = step peak + bytes of the tensors "
            "alive before the step (parameters, optimizer state, batch). Memory outside "
            "torch's allocator is not counted.")


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    for name in ("embed_dim", "ffn_dim", "heads", "encoder_layers", "decoder_layers", "vocab",
                 "batch_size", "seq_len", "reps", "warmup", "iga_steps"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                            help=f"overrides the preset's {name}")
    parser.add_argument("--p", type=float, default=0.3, help="--addrop-p")
    parser.add_argument("--q", type=float, default=0.3, help="--addrop-q")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what the table reports: wall-clock time, or this process's CPU "
                             "time (steadier on a shared machine; with several threads it sums "
                             "their work, spin-waits included). The JSON keeps both.")
    parser.add_argument("--variants", default="all",
                        help="comma-separated variant names (plain is always included)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sweep", default=None, metavar="L1,L2,...",
                        help="sequence-length sweep: one model and batch per length L, with "
                             "--sweep-tokens // L sentences (e.g. 32,64,128,256,512)")
    parser.add_argument("--sweep-tokens", type=int, default=512,
                        help="tokens per batch held constant over --sweep (default 512)")
    parser.add_argument("--free-masks", action="store_true",
                        help="diagnostic: AD-DROP's mask is an all-False one made at no cost "
                             "(the attribution pass, the second pass and its masked kernel are "
                             "unchanged): the floor that no faster mask could go below")
    parser.add_argument("--output", type=Path, default=None,
                        help="writes OUTPUT.md and OUTPUT.json (suffix, if any, is replaced)")
    args = parser.parse_args(argv)
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.device == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu measures the host process, not the GPU: use --clock wall")
    if args.device == "cpu" and args.dtype == "fp16":
        parser.error("--dtype fp16 needs --device cuda (fairseq's fp16 path is GPU-only)")
    if args.vocab < 8:
        parser.error(f"--vocab {args.vocab} must be >= 8 (fairseq reserves 4 symbols)")
    if args.reps < 1:
        parser.error(f"--reps {args.reps} must be >= 1")
    if args.embed_dim % args.heads:
        parser.error(f"--embed-dim {args.embed_dim} is not divisible by --heads {args.heads}")
    args.sweep_lengths = []
    if args.sweep:
        try:
            args.sweep_lengths = [int(v) for v in args.sweep.split(",") if v.strip()]
        except ValueError:
            parser.error(f"--sweep {args.sweep!r}: expected comma-separated lengths")
        if not args.sweep_lengths or min(args.sweep_lengths) < 2:
            parser.error(f"--sweep {args.sweep!r}: lengths must be >= 2")
    known = [v.name for v in variants(args.iga_steps)]
    if args.variants != "all":
        chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if unknown:
            parser.error(f"--variants: unknown {unknown[0]!r}; known: {', '.join(known)}")
        args.variant_names = ["plain"] + [v for v in chosen if v != "plain"]
    else:
        args.variant_names = known
    return args


def measure(args) -> dict:
    """Times (and unless --no-memory, measures the memory of) every selected variant on one
    model and batch; returns the result dictionary the JSON report holds."""
    bench = build(args)
    selected = [v for v in variants(args.iga_steps) if v.name in args.variant_names]
    tokens = int(bench.sample["ntokens"])
    print(f"model: {args.embed_dim}d ffn {args.ffn_dim} heads {args.heads} layers "
          f"{args.encoder_layers}+{args.decoder_layers} vocab {args.vocab}; batch "
          f"{args.batch_size} x <= {args.seq_len} ({tokens} target tokens); "
          f"{args.device} {args.dtype}, {torch.get_num_threads()} threads", flush=True)

    for variant in selected:  # warm-up: allocator, lazy initialisation, first-call costs
        for _ in range(args.warmup):
            run_step(bench, variant)
    clocks = {"wall": {v.name: [] for v in selected}, "cpu": {v.name: [] for v in selected}}
    for rep in range(args.reps):
        shift = rep % len(selected)
        for variant in selected[shift:] + selected[:shift]:
            wall, cpu = run_step(bench, variant)
            clocks["wall"][variant.name].append(wall)
            clocks["cpu"][variant.name].append(cpu)
        print(f"repetition {rep + 1}/{args.reps}: plain "
              f"{1000 * clocks[args.clock]['plain'][-1]:.1f} ms ({args.clock})", flush=True)
    times = clocks[args.clock]
    memory = {} if args.no_memory else measure_memory(bench, selected)
    rows = summarize(times, memory, selected)
    config = {k: v for k, v in vars(args).items()
              if k not in ("output", "variant_names", "sweep_lengths")}
    return {"config": config, "machine": machine(), "target_tokens": tokens,
            "memory_measure": memory_note(args.device), "rows": rows, "clock": args.clock,
            "times_ms": {clock: {k: [1000 * t for t in v] for k, v in per.items()}
                         for clock, per in clocks.items()}}


def sweep_table(results: List[dict]) -> str:
    """One line per sequence length: time and step peak memory of each variant against plain."""
    names = [row["variant"] for row in results[0]["rows"] if row["variant"] != "plain"]
    head = ("| L x B | target tokens | plain ms | "
            + " | ".join(f"{n} time" for n in names) + " | "
            + " | ".join(f"{n} step peak" for n in names) + " |")
    lines = [head, "|" + "---|" * (3 + 2 * len(names))]
    for result in results:
        config, rows = result["config"], {row["variant"]: row for row in result["rows"]}
        cells = [f"{config['seq_len']} x {config['batch_size']}", str(result["target_tokens"]),
                 f"{rows['plain']['median_ms']:.1f}"]
        cells += [f"{rows[n]['time_ratio']:.2f}x" for n in names]
        cells += [f"{rows[n]['step_memory_ratio']:.2f}x" if "step_memory_ratio" in rows[n]
                  else "-" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(args, argv, text: str, result) -> None:
    base = args.output
    if base.suffix in (".md", ".json"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    command = "addrop-benchmark " + " ".join(
        sys.argv[1:] if argv is None else map(str, argv))
    first = result[0] if isinstance(result, list) else result
    info = first["machine"]
    Path(f"{base}.md").write_text(
        f"# AD-DROP step cost\n\nCommand: `{command}`\n\n"
        f"Machine: {info.get('cpu')}, {info.get('gpu', 'no GPU')}; torch {info['torch']}, "
        f"{info['threads']} threads; {args.device} {args.dtype}.\n\n{text}\n\n"
        f"Memory: {first['memory_measure']}\n", encoding="utf-8")
    Path(f"{base}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\nwrote {base}.md and {base}.json")


def free_masks() -> None:
    """Replaces the candidate region and drop sampling by an empty mask (for --free-masks)."""
    from addrop_fairseq.core import step

    def empty_mask(scores, valid, *args, **kwargs):
        shape = valid.shape if scores is None else torch.broadcast_shapes(valid.shape, scores.shape)
        return torch.zeros(shape, dtype=torch.bool, device=valid.device)

    step.addrop_mask = empty_mask


def main(argv=None):
    args = parse_args(argv)
    if args.free_masks:
        free_masks()
    if args.threads:
        torch.set_num_threads(args.threads)
    # fairseq's and hydra's start-up chatter (deprecations, INFO logs) would bury the table
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, force=True)
    if args.sweep_lengths:
        results = []
        for length in args.sweep_lengths:
            args.seq_len, args.batch_size = length, max(1, args.sweep_tokens // length)
            results.append(measure(args))
            print()
            print(markdown_table(results[-1]["rows"]), flush=True)
        table = sweep_table(results)
        print()
        print(table)
        if args.output is not None:
            text = (f"Model: {args.embed_dim}d, ffn {args.ffn_dim}, {args.heads} heads, "
                    f"{args.encoder_layers}+{args.decoder_layers} layers, vocab {args.vocab}; "
                    f"sequence-length sweep at {args.sweep_tokens} tokens per batch (batch = "
                    f"{args.sweep_tokens} // L sentences of 3L/4 to L tokens); p={args.p}, "
                    f"q={args.q}; {args.reps} interleaved repetitions, medians of "
                    f"{'wall-clock' if args.clock == 'wall' else 'process CPU'} time; time and "
                    f"step peak memory relative to plain.\n\n{table}\n\n"
                    + "\n\n".join(f"### {r['config']['seq_len']} x {r['config']['batch_size']}"
                                    f"\n\n{markdown_table(r['rows'])}" for r in results))
            write_report(args, argv, text, results)
        return results
    result = measure(args)
    table = markdown_table(result["rows"])
    print()
    print(table)
    if args.output is not None:
        tokens = result["target_tokens"]
        text = (f"Model: {args.embed_dim}d, ffn {args.ffn_dim}, {args.heads} heads, "
                f"{args.encoder_layers}+{args.decoder_layers} layers, vocab {args.vocab}; batch "
                f"{args.batch_size} sentences of <= {args.seq_len} tokens ({tokens} target "
                f"tokens); p={args.p}, q={args.q}; {args.reps} interleaved repetitions, medians of "
                f"{'wall-clock' if args.clock == 'wall' else 'process CPU'} time.\n\n{table}")
        write_report(args, argv, text, result)
    return result


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

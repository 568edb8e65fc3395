"""The benchmark's model, batch and variants, and one timed update of each.

One ``addrop_transformer`` is built through fairseq (task ``addrop_translation``, criterion
``addrop_label_smoothed_cross_entropy``, fairseq's Adam, fp16/bf16 through fairseq's
FP16Optimizer); one update is ``task.train_step`` (forward and backward), the gradient-norm
computation and ``optimizer.step()``, as fairseq's Trainer runs them. The variants share the
model, the optimizer and the batch.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import torch

from .. import PLUGIN_DIR as PLUGIN

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
    from ..modules.attention import attention_mode, maskable_attention
    from ..config import select_modules

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


def free_masks() -> None:
    """Replaces the candidate region and drop sampling by an empty mask (for --free-masks)."""
    from ..core import step

    def empty_mask(scores, valid, *args, **kwargs):
        shape = valid.shape if scores is None else torch.broadcast_shapes(valid.shape, scores.shape)
        return torch.zeros(shape, dtype=torch.bool, device=valid.device)

    step.addrop_mask = empty_mask

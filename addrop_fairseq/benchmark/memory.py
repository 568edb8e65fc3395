"""The peak memory of one update of a variant.

On CUDA, ``torch.cuda.max_memory_allocated`` over one step (everything allocated: model,
optimizer state, activations). On CPU there is no allocator statistic, so one extra step per
variant runs under ``torch.profiler`` with ``profile_memory=True``: its allocation events carry
the CPU allocator's running total of live bytes, whose maximum minus its value at the start of
the step is the step's peak working memory (activations, gradients, temporaries); the bytes of
the tensors alive before the step (parameters, optimizer state, batch) are added to give the
peak total. Both exclude memory outside torch's allocator (Python objects, the interpreter, the
profiler's own buffers).
"""
from __future__ import annotations

from typing import Dict, List

import torch

from .steps import RUNNERS, Bench, Variant


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


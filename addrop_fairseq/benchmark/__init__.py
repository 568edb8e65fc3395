"""What AD-DROP costs per training step (``addrop-benchmark``) and per attention module
(``addrop-profile-attention``).

- ``steps``: the benchmark's model, batch and variants, built through fairseq, and one timed
  update of each variant as fairseq's Trainer runs it (the official code's scheme included);
- ``memory``: the peak memory of one update (CUDA allocator statistics, or torch.profiler's CPU
  allocation events);
- ``measure``: the interleaved repetitions, one model or a sequence-length sweep, end to end;
- ``report``: medians and ratios against the plain step, the Markdown tables, the machine
  description and the written report;
- ``profile``: one attention module's forward and backward, part by part.
"""

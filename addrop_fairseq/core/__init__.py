"""AD-DROP's mathematics in plain PyTorch (paper sections 2.1-2.4): no fairseq, nothing of the package
but itself. mask: candidate region and drop sampling; attribution: GA / IGA / AA scores; step: the
two-pass forward; schedule: cross-tuning; contract: what the step needs of an attention module."""

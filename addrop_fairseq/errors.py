"""A user error in AD-DROP options or data: ``AddropError``, whose message names the bad value.

The installed commands (``addrop_fairseq.cli``) print it as one line, ``prog: error: MESSAGE``.
"""
from .core.errors import AddropError

__all__ = ["AddropError"]

"""Warnings that nobody running fairseq 0.12 with this plugin can act on, filtered at import.

Each one comes from fairseq's own code or configuration on a current hydra/torch, says nothing
about the user's run, and repeats on every command. Anything else (a warning from this plugin,
a data or numerical problem, a deprecation in code a user writes) still shows.
"""
import warnings

HARMLESS = (
    # fairseq-train/-generate compose fairseq's configs with hydra's pre-1.1 API and layout
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
    (UserWarning, r"In '[^']*': Usage of deprecated keyword in package header '# @package _group_'"),
    # fairseq-hydra-train registers FairseqConfig under the name of the config it is given
    (UserWarning, r"\s*'[^']*' is validated against ConfigStore schema with the same name"),
    # fairseq asks for pinned memory; without an accelerator torch just does not pin
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
    # fairseq 0.12's train_step and multi-head attention on torch 2.x: same results
    (FutureWarning, r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated"),
    (UserWarning, r"Support for mismatched key_padding_mask and attn_mask is deprecated"),
)


def filter_harmless_warnings() -> None:
    for category, message in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)

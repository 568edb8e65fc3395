import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = str(REPO / "addrop_fairseq")

# The tests mirror the package (tests/core, tests/data, ...; tests/e2e holds every test that
# starts a process). Test modules import each other's helpers by name (``from test_convert_marian
# import toy_pairs``), whichever folder they are in: every folder is on the path.
for _folder in sorted(Path(__file__).parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith(("_", ".")) and str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def run_cli(module: str, *args: str, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """Runs ``python -m MODULE ARGS`` (e.g. fairseq_cli.train) and returns its output."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    environment.update(env or {})
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                            env=environment, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


# Commands that libraries run inside their own imports, no command of the tests': ldconfig
# (ctypes.util.find_library) and fc-list (matplotlib builds its font cache on its first import on
# a machine; a fresh CI machine has none, and every xdist worker may be the first).
LIBRARY_IMPORT_COMMANDS = {"ldconfig", "fc-list"}


@pytest.fixture(autouse=True)
def _quick_tests_start_no_process(request, monkeypatch):
    """The quick subset (-m "not slow") starts no process: a test that does must be marked slow
    (every module under tests/e2e is, by its `pytestmark`)."""
    if request.node.get_closest_marker("slow"):
        return
    import subprocess

    start = subprocess.Popen.__init__

    def refuse(self, args, *rest, **kwargs):
        program = args if isinstance(args, (str, bytes)) else args[0]
        if os.path.basename(os.fsdecode(program)) in LIBRARY_IMPORT_COMMANDS:
            return start(self, args, *rest, **kwargs)
        raise AssertionError(f"{request.node.nodeid} starts a process ({args!r}) but is not "
                             "marked slow: move it to tests/e2e")
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture(autouse=True)
def _fairseq_known_warnings():
    """The fairseq/hydra/torch warnings the commands filter, ignored by message (pytest.ini
    cannot hold them: they contain colons); set inside pytest's per-test warning context."""
    from addrop_fairseq.cli.warning_filters import filter_harmless_warnings

    filter_harmless_warnings()


@pytest.fixture(scope="session")
def plugin_dir() -> str:
    return PLUGIN


def tiny_dictionary(size: int = 24):
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for index in range(size):
        dictionary.add_symbol(f"w{index}")
    return dictionary


TINY_ARCH = dict(encoder_layers=2, decoder_layers=2, encoder_embed_dim=32, decoder_embed_dim=32,
                 encoder_ffn_embed_dim=64, decoder_ffn_embed_dim=64, encoder_attention_heads=4,
                 decoder_attention_heads=4, dropout=0.0, attention_dropout=0.0,
                 share_all_embeddings=True)


def tiny_translation(arch: str = "addrop_transformer", seed: int = 0, **overrides):
    """(task, model) built through fairseq's registries, no data on disk."""
    import argparse

    import torch
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    import addrop_fairseq  # noqa: F401
    from addrop_fairseq.tasks.addrop_translation import AddropTranslationConfig, AddropTranslationTask

    dictionary = tiny_dictionary()
    task = AddropTranslationTask(AddropTranslationConfig(data="", seed=1), dictionary, dictionary)
    args = argparse.Namespace(arch=arch, **{**TINY_ARCH, **overrides})
    ARCH_CONFIG_REGISTRY[arch](args)
    torch.manual_seed(seed)
    model = ARCH_MODEL_REGISTRY[arch].build_model(args, task)
    task._model = model
    return task, model


def tiny_batch(dictionary, batch: int = 3, src_len: int = 7, tgt_len: int = 6, seed: int = 0):
    """A translation sample with left-padded sources and right-padded targets, as fairseq makes."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    pad, eos, low = dictionary.pad(), dictionary.eos(), dictionary.nspecial
    src_lengths = torch.tensor([src_len - 2 * i for i in range(batch)]).clamp(min=2)
    tgt_lengths = torch.tensor([tgt_len - i for i in range(batch)]).clamp(min=2)
    src = torch.full((batch, src_len), pad)
    target = torch.full((batch, tgt_len), pad)
    prev = torch.full((batch, tgt_len), pad)
    for b in range(batch):
        s, t = int(src_lengths[b]), int(tgt_lengths[b])
        src[b, src_len - s:] = torch.randint(low, len(dictionary), (s,), generator=generator)
        src[b, -1] = eos
        words = torch.randint(low, len(dictionary), (t - 1,), generator=generator)
        target[b, :t] = torch.cat([words, torch.tensor([eos])])
        prev[b, :t] = torch.cat([torch.tensor([eos]), words])
    return {
        "id": torch.arange(batch),
        "nsentences": batch,
        "ntokens": int(tgt_lengths.sum()),
        "net_input": {"src_tokens": src, "src_lengths": src_lengths, "prev_output_tokens": prev},
        "target": target,
    }

"""``addrop-hydra-train``: fairseq-hydra-train with this plugin loaded and its recipes found.

fairseq-hydra-train imports a plugin only through ``common.user_dir``, a path that a recipe cannot
know (it depends on where the package is installed) and that a relative value would resolve
against hydra's output directory. This command imports the plugin first (so that its
configurations are known when hydra composes the recipe), passes fairseq its absolute path (so
that the workers of a distributed run import it too) and adds the recipes shipped in the package
(``addrop_fairseq/recipes``) as the config directory, so ``--config-name quickstart`` works from any
directory (a ``--config-dir`` of the user's replaces it). Every argument is fairseq-hydra-train's.
"""
import logging
import sys
from pathlib import Path

from .. import PLUGIN_DIR
from ..errors import AddropError
from .policy import run

RECIPES = Path(PLUGIN_DIR) / "recipes"


# hydra's options that take a value: what follows them is not an override
_VALUED = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c",
           "--package", "-p", "--experimental-rerun"}


def with_overrides(argv, overrides):
    """argv with ``overrides`` beside the user's own (hydra's parser takes them as one run of
    positionals: appended after ``--cfg job``, say, they would be refused)."""
    argv = list(argv)
    index, position = 0, len(argv)
    while index < len(argv):
        arg = argv[index]
        if arg in _VALUED:
            index += 2
            continue
        if not arg.startswith("-"):
            position = index
            break
        index += 1
    return argv[:position] + list(overrides) + argv[position:]


def with_plugin(argv):
    """argv plus ``common.user_dir=<this package>`` unless it sets one, and the packaged recipes
    as the config directory unless it names its own.

    The recipes go in through --config-dir, not hydra.searchpath: fairseq registers a schema
    under the recipe's name, and a search-path entry would rank below it.
    """
    argv = list(argv)
    if not any(arg.lstrip("+").startswith("common.user_dir=") for arg in argv):
        argv = with_overrides(argv, [f"common.user_dir={PLUGIN_DIR}"])
    if not any(arg in ("--config-dir", "-cd") or arg.startswith("--config-dir=") for arg in argv):
        argv = ["--config-dir", str(RECIPES), *argv]
    return argv


def one_line_errors(job):
    """hydra reports any error of the job with a traceback; let this plugin's reach the policy."""
    def wrapped(*args, **kwargs):
        try:
            return job(*args, **kwargs)
        except AddropError as error:
            print(f"addrop-hydra-train: error: {error}", file=sys.stderr)
            sys.exit(1)  # SystemExit passes through hydra's error report
    return wrapped


def main() -> None:
    import fairseq_cli.hydra_train as fairseq_hydra_train

    # importing fairseq sets the root logger to DEBUG (fairseq/models/wav2vec/
    # wav2vec2_classification.py), so hydra's start-up notes would print; hydra.verbose=hydra
    # still shows them
    logging.getLogger("hydra").setLevel(logging.INFO)

    sys.argv = [sys.argv[0], *with_plugin(sys.argv[1:])]
    # fairseq's hydra_main looks _hydra_main up when called
    fairseq_hydra_train._hydra_main = one_line_errors(fairseq_hydra_train._hydra_main)
    fairseq_hydra_train.cli_main()


def cli() -> None:
    run(main, "addrop-hydra-train")


if __name__ == "__main__":
    cli()

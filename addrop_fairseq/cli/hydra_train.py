"""``addrop-hydra-train``: fairseq-hydra-train with this plugin loaded and its recipes found.

fairseq-hydra-train imports a plugin only through ``common.user_dir``, a path that a recipe cannot
know (it depends on where the package is installed) and that a relative value would resolve
against hydra's output directory. This command imports the plugin first (so that its
configurations are known when hydra composes the recipe), passes fairseq its absolute path (so
that the workers of a distributed run import it too) and adds the recipes shipped in the package
(``addrop_fairseq/recipes``) to hydra's search path, so ``--config-name quickstart`` works from any
directory; a ``--config-dir`` of the user's is searched first. Every argument is
fairseq-hydra-train's.
"""
import logging
import sys
from pathlib import Path

from .. import PLUGIN_DIR
from ..errors import AddropError
from .policy import run

RECIPES = Path(PLUGIN_DIR) / "recipes"


def with_user_dir(argv):
    """argv plus ``common.user_dir=<this package>``, unless the command line sets it."""
    if any(arg.lstrip("+").startswith("common.user_dir=") for arg in argv):
        return list(argv)
    return [*argv, f"common.user_dir={PLUGIN_DIR}"]


def with_recipes(argv):
    """argv plus the packaged recipes on hydra's search path, unless it sets the search path."""
    if any(arg.lstrip("+").startswith("hydra.searchpath=") for arg in argv):
        return list(argv)
    return [*argv, f"hydra.searchpath=[file://{RECIPES}]"]


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

    sys.argv = [sys.argv[0], *with_recipes(with_user_dir(sys.argv[1:]))]
    # fairseq's hydra_main looks _hydra_main up when called
    fairseq_hydra_train._hydra_main = one_line_errors(fairseq_hydra_train._hydra_main)
    fairseq_hydra_train.cli_main()


def cli() -> None:
    run(main, "addrop-hydra-train")


if __name__ == "__main__":
    cli()

"""fairseq-hydra-train with this plugin loaded: ``addrop-hydra-train --config-dir DIR --config-name NAME``.

fairseq-hydra-train imports a plugin only through ``common.user_dir``, a path that a recipe cannot
know (it depends on where the package is installed) and that a relative value would resolve
against hydra's output directory. This entry point imports the plugin first (so that its
configurations are known when hydra composes the recipe) and passes fairseq its absolute path
(so that the workers of a distributed run import it too); every argument is fairseq-hydra-train's.
"""
import logging
import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def with_user_dir(argv):
    """argv plus ``common.user_dir=<this package>``, unless the command line sets it."""
    if any(arg.lstrip("+").startswith("common.user_dir=") for arg in argv):
        return list(argv)
    return [*argv, f"common.user_dir={PLUGIN_DIR}"]


def one_line_errors(run):
    """hydra prints a traceback for any error of the job; a bad option or input of this plugin
    gets its one-line message, as with fairseq-train."""
    def wrapped(*args, **kwargs):
        from addrop_fairseq.errors import AddropError

        try:
            return run(*args, **kwargs)
        except AddropError as error:
            print(f"addrop_fairseq: error: {error}", file=sys.stderr)
            sys.exit(1)  # SystemExit passes through hydra's error report
    return wrapped


def cli_main() -> None:
    import addrop_fairseq  # noqa: F401  (registers the components, installs the warning filters)
    import fairseq_cli.hydra_train as fairseq_hydra_train

    # importing fairseq sets the root logger to DEBUG (fairseq/models/wav2vec/
    # wav2vec2_classification.py), so hydra's start-up notes would print; hydra.verbose=hydra
    # still shows them
    logging.getLogger("hydra").setLevel(logging.INFO)

    sys.argv = [sys.argv[0], *with_user_dir(sys.argv[1:])]
    # fairseq's hydra_main looks _hydra_main up when called
    fairseq_hydra_train._hydra_main = one_line_errors(fairseq_hydra_train._hydra_main)
    fairseq_hydra_train.cli_main()


if __name__ == "__main__":
    cli_main()

"""fairseq-hydra-train with this plugin loaded: ``addrop-hydra-train --config-dir DIR --config-name NAME``.

fairseq-hydra-train imports a plugin only through ``common.user_dir``, a path that a recipe cannot
know (it depends on where the package is installed) and that a relative value would resolve
against hydra's output directory. This entry point imports the plugin first (so that its
configurations are known when hydra composes the recipe) and passes fairseq its absolute path
(so that the workers of a distributed run import it too); every argument is fairseq-hydra-train's.
"""
import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def with_user_dir(argv):
    """argv plus ``common.user_dir=<this package>``, unless the command line sets it."""
    if any(arg.lstrip("+").startswith("common.user_dir=") for arg in argv):
        return list(argv)
    return [*argv, f"common.user_dir={PLUGIN_DIR}"]


def cli_main() -> None:
    import addrop_fairseq  # noqa: F401  (registers the components, installs the warning filters)

    sys.argv = [sys.argv[0], *with_user_dir(sys.argv[1:])]
    from fairseq_cli.hydra_train import cli_main as fairseq_hydra_train

    fairseq_hydra_train()


if __name__ == "__main__":
    cli_main()

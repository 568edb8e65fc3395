"""``addrop-train``: ``fairseq-train`` with this plugin loaded, every other argument fairseq's."""
from .fairseq_tools import run_fairseq_tool


def cli() -> None:
    from fairseq_cli.train import cli_main

    run_fairseq_tool(cli_main, "addrop-train")


if __name__ == "__main__":
    cli()

"""``addrop-generate``: ``fairseq-generate`` with this plugin loaded, every other argument fairseq's."""
from .fairseq_tools import run_fairseq_tool


def cli() -> None:
    from fairseq_cli.generate import cli_main

    run_fairseq_tool(cli_main, "addrop-generate")


if __name__ == "__main__":
    cli()

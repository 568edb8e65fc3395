"""BLEU with sacrebleu on detokenized text, signature printed.

Either a fairseq-generate log (``--generate-output FILE``: its D- hypotheses and T- references,
written with ``--post-process sentencepiece``) or plain files (``--hyp FILE --ref FILE``).
"""
import argparse

from addrop_fairseq.scoring.bleu import score_bleu
from addrop_fairseq.cli.policy import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generate-output")
    parser.add_argument("--hyp")
    parser.add_argument("--ref")
    parser.add_argument("--tokenize", default="13a", help="sacrebleu tokenizer (13a is WMT's)")
    args = parser.parse_args(argv)
    if not args.generate_output and not (args.hyp and args.ref):
        parser.error("give --generate-output, or --hyp and --ref")
    score, signature, sentences = score_bleu(args.generate_output, args.hyp, args.ref,
                                             args.tokenize)
    print(f"{score} ({sentences} sentences)")
    print(f"signature: {signature}")


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""BLEU with sacrebleu on detokenized text, signature printed.

Either a fairseq-generate log (``--generate-output FILE``: its D- hypotheses and T- references,
written with ``--post-process sentencepiece``) or plain files (``--hyp FILE --ref FILE``).
"""
import argparse
import sys
from pathlib import Path

from addrop_fairseq.scoring.bleu import corpus_bleu, read_generate_output
from addrop_fairseq.errors import AddropError
from addrop_fairseq.cli.policy import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generate-output")
    parser.add_argument("--hyp")
    parser.add_argument("--ref")
    parser.add_argument("--tokenize", default="13a", help="sacrebleu tokenizer (13a is WMT's)")
    args = parser.parse_args(argv)
    try:
        if args.generate_output:
            hyps, refs = read_generate_output(args.generate_output)
        elif args.hyp and args.ref:
            hyps = open(args.hyp, encoding="utf-8").read().splitlines()
            refs = open(args.ref, encoding="utf-8").read().splitlines()
        else:
            parser.error("give --generate-output, or --hyp and --ref")
        score, signature = corpus_bleu(hyps, refs, args.tokenize)
    except AddropError as e:
        sys.exit(f"score_bleu: error: {e}")
    print(f"{score} ({len(hyps)} sentences)")
    print(f"signature: {signature}")
    return score.score


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

#!/usr/bin/env python
"""BLEU with sacrebleu on detokenized text, signature printed.

Either a fairseq-generate log (``--generate-output FILE``: its D- hypotheses and T- references,
written with ``--post-process sentencepiece``) or plain files (``--hyp FILE --ref FILE``).
"""
import argparse
import sys

import sacrebleu


def read_generate_output(path):
    hyps, refs = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            tag, _, rest = line.rstrip("\n").partition("\t")
            if tag.startswith("D-"):
                hyps[int(tag[2:])] = rest.split("\t", 1)[1] if "\t" in rest else ""
            elif tag.startswith("T-"):
                refs[int(tag[2:])] = rest
    if not hyps:
        sys.exit(f"score_bleu: error: {path} has no D- lines (is it fairseq-generate output?)")
    missing = sorted(set(hyps) ^ set(refs))
    if missing:
        sys.exit(f"score_bleu: error: {path}: sentences {missing[:5]} lack a hypothesis or reference")
    ids = sorted(hyps)
    return [hyps[i] for i in ids], [refs[i] for i in ids]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generate-output")
    parser.add_argument("--hyp")
    parser.add_argument("--ref")
    parser.add_argument("--tokenize", default="13a", help="sacrebleu tokenizer (13a is WMT's)")
    args = parser.parse_args(argv)
    if args.generate_output:
        hyps, refs = read_generate_output(args.generate_output)
    elif args.hyp and args.ref:
        hyps = open(args.hyp, encoding="utf-8").read().splitlines()
        refs = open(args.ref, encoding="utf-8").read().splitlines()
        if len(hyps) != len(refs):
            sys.exit(f"score_bleu: error: {args.hyp} has {len(hyps)} lines, {args.ref} {len(refs)}")
    else:
        parser.error("give --generate-output, or --hyp and --ref")
    metric = sacrebleu.metrics.BLEU(tokenize=args.tokenize)
    score = metric.corpus_score(hyps, [refs])
    print(f"{score} ({len(hyps)} sentences)")
    print(f"signature: {metric.get_signature()}")
    return score.score


if __name__ == "__main__":
    main()

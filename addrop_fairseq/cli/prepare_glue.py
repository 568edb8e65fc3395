"""GLUE TSV files (or a Hugging Face ``glue`` JSON Lines dump) -> fairseq data for
``--task addrop_sentence_prediction``, tokenized the way the chosen pretrained model was.

Input: a GLUE task directory as distributed (train.tsv, dev.tsv, test.tsv; MNLI dev_matched.tsv,
dev_mismatched.tsv, ...) or the JSON Lines files ``datasets`` writes with
``load_dataset("nyu-mll/glue", TASK)[SPLIT].to_json(f"{SPLIT}.jsonl")`` (train.jsonl,
validation.jsonl, test.jsonl; MNLI validation_matched.jsonl, ...).

Tokenizer, one of:
  --hf-tokenizer DIR          a Hugging Face tokenizer directory (AutoTokenizer, local files only)
  --sentencepiece MODEL       a sentencepiece model
  --gpt2-bpe ENCODER VOCAB    fairseq RoBERTa's GPT-2 BPE (encoder.json, vocab.bpe)
and --dict DICT, the pretrained model's fairseq dict.txt (without it, a dictionary is made from
the tokenizer's whole vocabulary, for models trained from scratch). For a model converted by
addrop-convert-hf-encoder: --hf-tokenizer OUT/tokenizer --dict OUT/dict.txt (the tokens it
renamed, listed in OUT/conversion.json, are followed).

Output (fairseq's sentence_prediction layout): DEST/input0 (and DEST/input1 for pairs) with
train/valid[/valid1]/test[/test1] .bin/.idx and dict.txt; DEST/label with the binarized class
labels and dict.txt (the task's labels in Hugging Face ClassLabel order) or, for STS-B, one score
per line in SPLIT.label; DEST/glue.json records the task, labels and the flags training needs.
DEST is written whole or not at all: an existing non-empty DEST is refused unless --force, which
replaces it whole.
"""
import argparse

from addrop_fairseq.cli.policy import run
from addrop_fairseq.data import glue
from addrop_fairseq.data.glue_prepare import LAYOUTS, prepare_glue, report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True,
                        help=f"one of {', '.join(glue.TASK_NAMES)} "
                             "(GLUE spellings such as SST-2 work too)")
    parser.add_argument("--input", required=True, help="the task's GLUE directory or HF dump")
    parser.add_argument("--input-format", choices=("auto", "tsv", "jsonl"), default="auto")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--hf-tokenizer", metavar="DIR")
    parser.add_argument("--sentencepiece", metavar="MODEL")
    parser.add_argument("--gpt2-bpe", nargs=2, metavar=("ENCODER_JSON", "VOCAB_BPE"))
    parser.add_argument("--dict", help="the pretrained model's fairseq dict.txt")
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default="roberta",
                        help="roberta: <s> A </s></s> B </s> (--init-token 0 --separator-token 2); "
                             "bert: [CLS] A [SEP] B [SEP] (--init-token 0)")
    parser.add_argument("--max-len", type=int, help="truncate inputs, longest segment first, to "
                        "this many tokens including the special tokens (the paper's max_len)")
    parser.add_argument("--splits", help="comma-separated fairseq split names (default: train, "
                        "valid and whichever other splits have files)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing non-empty --dest whole")
    args = parser.parse_args(argv)
    meta = prepare_glue(args.task, args.input, args.dest, hf_tokenizer=args.hf_tokenizer,
                        sentencepiece=args.sentencepiece, gpt2_bpe=args.gpt2_bpe,
                        dict_file=args.dict, layout=args.layout, max_len=args.max_len,
                        splits=args.splits, input_format=args.input_format, force=args.force)
    print("\n".join(report(meta, args.dest)))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

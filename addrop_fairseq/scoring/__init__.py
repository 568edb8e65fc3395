"""Scoring: BLEU (sacrebleu) and the evaluation of checkpoints on prepared data (GLUE, NER), with
one checkpoint loader (``checkpoint``) that the analyses share."""

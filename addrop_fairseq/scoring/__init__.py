"""Scoring: sacrebleu BLEU, and the evaluation of fine-tuned checkpoints."""

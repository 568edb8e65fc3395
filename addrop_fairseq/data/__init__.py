"""Reading and preparing data without fairseq's training code: GLUE, CoNLL, parallel text."""

"""sacrebleu's BLEU on detokenized text, from fairseq-generate output or plain files."""
from typing import Dict, List, Tuple

from ..errors import AddropError


def read_generate_output(path) -> Tuple[List[str], List[str]]:
    """(hypotheses, references) in sentence-id order from fairseq-generate's D- and T- lines
    (written with ``--post-process``, so detokenized)."""
    hyps: Dict[int, str] = {}
    refs: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            tag, _, rest = line.rstrip("\n").partition("\t")
            if tag.startswith("D-"):
                hyps[int(tag[2:])] = rest.split("\t", 1)[1] if "\t" in rest else ""
            elif tag.startswith("T-"):
                refs[int(tag[2:])] = rest
    if not hyps:
        raise AddropError(f"{path} has no D- lines (is it fairseq-generate output?)")
    missing = sorted(set(hyps) ^ set(refs))
    if missing:
        raise AddropError(f"{path}: sentences {missing[:5]} lack a hypothesis or reference")
    ids = sorted(hyps)
    return [hyps[i] for i in ids], [refs[i] for i in ids]


def corpus_bleu(hyps: List[str], refs: List[str], tokenize: str = "13a"):
    """(sacrebleu's BLEUScore, its signature string)."""
    import sacrebleu

    if len(hyps) != len(refs):
        raise AddropError(f"{len(hyps)} hypotheses but {len(refs)} references")
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    return metric.corpus_score(hyps, [refs]), str(metric.get_signature())

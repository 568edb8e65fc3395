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


def score_bleu(generate_output=None, hyp=None, ref=None, tokenize: str = "13a"):
    """``addrop-score-bleu``: (BLEUScore, signature, sentences) of a fairseq-generate log, or of
    a hypothesis and a reference file (one sentence a line)."""
    if generate_output:
        hyps, refs = read_generate_output(generate_output)
    else:
        hyps, refs = _lines("--hyp", hyp), _lines("--ref", ref)
    score, signature = corpus_bleu(hyps, refs, tokenize)
    return score, signature, len(hyps)


def _lines(option: str, path) -> List[str]:
    try:
        return open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AddropError(f"{option} {path}: cannot read it ({error})") from None

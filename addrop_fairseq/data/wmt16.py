"""WMT16 EN-RO or TR-EN as plain text, from the Hugging Face hub (addrop-download-wmt16).

The training corpus of ``wmt/wmt16`` (Europarl + SETimes for EN-RO, SETimes for TR-EN),
newsdev2016 as valid and newstest2016 as test: the sets the paper reports.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import AddropError

PAIRS = {"en-ro": "ro-en", "ro-en": "ro-en", "tr-en": "tr-en", "en-tr": "tr-en"}


def download_wmt16(source_lang: str, target_lang: str, dest) -> None:
    """Writes DEST/{train,valid,test}.{SRC,TGT}, whitespace normalised, one sentence a line
    (needs the internet and the ``datasets`` package)."""
    pair = f"{source_lang}-{target_lang}"
    if pair not in PAIRS:
        raise AddropError(f"pair {pair!r} is not in WMT16 here; allowed: {sorted(PAIRS)}")
    try:
        from datasets import load_dataset
    except ImportError:
        raise AddropError("needs the 'datasets' package: pip install datasets") from None
    corpus = load_dataset("wmt/wmt16", PAIRS[pair])
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        rows = corpus[split]["translation"]
        for lang in (source_lang, target_lang):
            with open(dest / f"{name}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(" ".join(row[lang].split()) + "\n" for row in rows)
        print(f"{name}: {len(rows)} pairs")

"""The tokenizers the prepare commands use: text -> the symbols of a fairseq dictionary.

Every tokenizer here is a ``Tokenizer``: ``symbols`` splits each text (a sentence, or a single
word of a pre-split sentence) into symbols without adding special tokens, and ``vocabulary``
lists every ordinary symbol it can produce, so a dictionary made from it has no gaps. The
sentencepiece implementation is shared by the GLUE, CoNLL and translation data; the Hugging Face
adapters differ in what they are given (whole texts for GLUE, pre-split words for NER).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Protocol, Sequence, Tuple, runtime_checkable

from ..errors import AddropError


@runtime_checkable
class Tokenizer(Protocol):
    kind: str  # sentencepiece, huggingface, gpt2 or whitespace
    description: str  # what was used, as the prepared data records it

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        """The symbols of each text, no special tokens added."""

    def vocabulary(self) -> List[str]:
        """Every ordinary (non-special) symbol, in the tokenizer's id order."""


class SentencePieceTokenizer:
    """A sentencepiece model; its symbols are its pieces."""

    kind = "sentencepiece"

    def __init__(self, model, option: str = "--sentencepiece"):
        import sentencepiece as spm

        if not Path(model).is_file():
            raise AddropError(f"{option} {model}: no such file")
        self.model_file = str(model)
        self.description = f"sentencepiece:{model}"
        try:
            self.processor = spm.SentencePieceProcessor(model_file=self.model_file)
        except (RuntimeError, OSError) as error:
            raise AddropError(f"{option} {model}: not a sentencepiece model "
                              f"({str(error).strip().splitlines()[-1]})") from None

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        # a single word encoded alone gets the word-initial marker, as it would in a sentence
        return self.processor.encode(list(texts), out_type=str)

    def vocabulary(self) -> List[str]:
        sp = self.processor
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                if not (sp.is_control(i) or sp.is_unknown(i))]


def train_sentencepiece(inputs: Sequence[Path], model_prefix: Path, vocab_size: int,
                        threads: int) -> Path:
    """A unigram model of ``inputs`` (text files) at ``model_prefix``.model.

    Byte fallback: any character, even one unseen in training, becomes pieces rather than
    ``<unk>``, so every word round-trips exactly.
    """
    import sentencepiece as spm

    try:
        spm.SentencePieceTrainer.train(
            input=[str(path) for path in inputs], model_prefix=str(model_prefix),
            vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
            byte_fallback=True, hard_vocab_limit=False, num_threads=threads, minloglevel=2,
        )
    except RuntimeError as error:  # e.g. a vocabulary smaller than the 256 byte pieces
        raise AddropError(f"--vocab-size {vocab_size}: sentencepiece training failed: "
                          f"{str(error).strip().splitlines()[-1]}") from None
    return Path(f"{model_prefix}.model")


class WhitespaceTokenizer:
    """Every whitespace-separated word is a symbol (an open, word-level vocabulary: a
    dictionary is made from the training words' counts, so ``vocabulary`` is empty)."""

    kind = "whitespace"
    description = "whitespace"

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        return [text.split() for text in texts]

    def vocabulary(self) -> List[str]:
        return []


class GPT2BPETokenizer:
    """fairseq RoBERTa's byte-level BPE; its symbols are the BPE ids as decimal strings, as in
    fairseq's own GPT-2 dictionaries."""

    kind = "gpt2"

    def __init__(self, encoder_json: str, vocab_bpe: str):
        from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

        for path in (encoder_json, vocab_bpe):
            if not Path(path).is_file():
                raise AddropError(f"--gpt2-bpe: no such file {path}")
        self.bpe = get_encoder(encoder_json, vocab_bpe)
        self.description = f"gpt2:{encoder_json}"

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        return [[str(i) for i in self.bpe.encode(text)] for text in texts]

    def vocabulary(self) -> List[str]:
        return [str(i) for i in sorted(self.bpe.encoder.values())]


def load_hf_tokenizer(directory, **options):
    """``AutoTokenizer`` from local files only, with one-line errors."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise AddropError("--hf-tokenizer needs the transformers package") from None
    if not Path(directory).is_dir():
        raise AddropError(f"--hf-tokenizer {directory}: not a directory")
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True, **options)
    except Exception as e:  # transformers raises many types; say which directory failed
        raise AddropError(
            f"--hf-tokenizer {directory}: cannot load a tokenizer ({e})") from None


class HFTextTokenizer:
    """A Hugging Face tokenizer on whole texts (GLUE). Symbols are the tokenizer's ids as
    decimal strings (the convention of fairseq's own GPT-2 BPE dictionaries), or its token
    strings when the given dictionary is written that way (``choose_form``)."""

    kind = "huggingface"

    def __init__(self, directory: str):
        self.tokenizer = tok = load_hf_tokenizer(directory)
        self.description = f"hf:{directory}"
        self.form = "ids"
        self.renamed: Dict[str, str] = {}
        # special tokens the text itself may contain map onto fairseq's own special symbols
        self.special: Dict[int, str] = {}
        for attr, symbol in (("pad_token_id", "<pad>"), ("unk_token_id", "<unk>"),
                             ("cls_token_id", "<s>"), ("bos_token_id", "<s>"),
                             ("sep_token_id", "</s>"), ("eos_token_id", "</s>"),
                             ("mask_token_id", "<mask>")):
            token_id = getattr(tok, attr, None)
            if token_id is not None:
                self.special.setdefault(token_id, symbol)
        for token_id in tok.all_special_ids:
            self.special.setdefault(token_id, "<unk>")

    def choose_form(self, dictionary_symbols: set, renamed: Dict[str, str]) -> None:
        """Ids or token strings, whichever the pretrained model's dictionary holds; ``renamed``
        maps tokens that addrop-convert-hf-encoder gave placeholder names to those names."""
        self.renamed = renamed
        vocab = self.tokenizer.get_vocab()
        by_token = sum(1 for t in vocab if renamed.get(t, t) in dictionary_symbols)
        by_id = sum(1 for i in vocab.values() if str(i) in dictionary_symbols)
        self.form = "tokens" if by_token > by_id else "ids"
        if max(by_token, by_id) < 0.5 * (len(vocab) - len(self.special)):
            raise AddropError(
                f"--dict holds only {max(by_token, by_id)} of the tokenizer's {len(vocab)} "
                "tokens (as token strings or as ids): it is not this tokenizer's dictionary")

    def _table(self) -> Dict[int, str]:
        """id -> fairseq symbol for the whole vocabulary, built once per symbol form."""
        if getattr(self, "_built", None) != self.form:
            table = {}
            for token, token_id in self.tokenizer.get_vocab().items():
                if token_id in self.special:
                    table[token_id] = self.special[token_id]
                elif self.form == "ids":
                    table[token_id] = str(token_id)
                else:
                    table[token_id] = self.renamed.get(token, token)
            self._symbols, self._built = table, self.form
        return self._symbols

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        table = self._table()
        batch = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [[table[i] for i in ids] for ids in batch]

    def vocabulary(self) -> List[str]:
        table = self._table()
        return [table[i] for i in sorted(set(table) - set(self.special))]


class HFWordTokenizer:
    """A Hugging Face tokenizer on pre-split words (NER): symbols are its token strings, and
    ``split_with_ids`` gives each word's tokens and ids with the words aligned."""

    kind = "huggingface"

    def __init__(self, directory):
        if not Path(directory, "tokenizer_config.json").is_file() and not any(
                Path(directory, name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
            raise AddropError(f"--hf-tokenizer {directory}: no tokenizer files (tokenizer.json, "
                              "vocab.txt or vocab.json) in that directory")
        self.directory = str(directory)
        self.description = f"hf:{directory}"
        from transformers import AutoTokenizer

        try:
            # byte-level BPE (RoBERTa) marks a word start with a space, which pre-split words lack
            self.tokenizer = AutoTokenizer.from_pretrained(self.directory, local_files_only=True,
                                                           add_prefix_space=True)
        except (TypeError, ValueError):
            self.tokenizer = AutoTokenizer.from_pretrained(self.directory, local_files_only=True)
        self.special_tokens = set(self.tokenizer.all_special_tokens)

    def split_with_ids(self, words: Sequence[str]) -> Tuple[List[List[str]], List[List[int]]]:
        encoding = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)
        pieces: List[List[str]] = [[] for _ in words]
        ids: List[List[int]] = [[] for _ in words]
        for token, token_id, word in zip(encoding.tokens(), encoding["input_ids"], encoding.word_ids()):
            if word is not None:
                pieces[word].append(token)
                ids[word].append(token_id)
        return pieces, ids

    def symbols(self, texts: Sequence[str]) -> List[List[str]]:
        """Each text taken as one word of a sentence."""
        return self.split_with_ids(texts)[0]

    def vocabulary(self) -> List[str]:
        """Token strings in id order, special tokens left out."""
        by_id = sorted(self.tokenizer.get_vocab().items(), key=lambda item: item[1])
        return [token for token, _ in by_id if token not in self.special_tokens]

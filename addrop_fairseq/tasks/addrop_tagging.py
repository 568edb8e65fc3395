"""Sequence tagging (NER) with cross-tuning and seqeval entity F1 in validation.

Data (written by addrop-prepare-conll2003), all under ``--data``:
  input/dict.txt, input/SPLIT.{bin,idx}    subword ids of each sentence (no <s>, </s>)
  pieces/SPLIT.{bin,idx}                  number of subwords of each word
  label/dict.txt, label/SPLIT.{bin,idx}   one BIO2 label id per word
The task adds <s> ... </s> around each sentence (as RoBERTa-style encoders expect) and aligns the
word labels to subwords; validation reads the predictions back from each word's first subword.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
import torch
from fairseq.data import (
    AppendTokenDataset,
    BaseWrapperDataset,
    Dictionary,
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RightPadDataset,
    SortDataset,
    data_utils,
)
from fairseq.data import iterators
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from fairseq.tasks import FairseqTask, register_task
from omegaconf import MISSING

from ..config import AddropScheduleConfig
from ..errors import AddropError
from ..data.ner import (
    IGNORE_INDEX,
    align_labels,
    continuation_labels,
    entity_counts,
    precision_recall_f1,
    word_starts,
)
from .cross_tuning import CrossTuningMixin

logger = logging.getLogger(__name__)

# the logging-output keys of the validation counts, summed over batches and workers
NER_COUNT_KEYS = ("tp", "pred", "gold", "words", "words_correct")


@dataclass
class AddropTaggingConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={
        "help": "directory written by addrop-prepare-conll2003"})
    label_all_subwords: bool = field(default=False, metadata={
        "help": "train on every subword of a word (later pieces of a B-X word get I-X), as the "
                "paper's code did; by default only a word's first subword carries its label"})
    max_positions: int = field(default=512, metadata={
        "help": "longest input in subwords, <s> and </s> included"})
    no_shuffle: bool = field(default=False)
    batch_order: ChoiceEnum(["length", "random"]) = field(default="length", metadata={
        "help": "length: fairseq's batches of similar lengths, made once and reused every epoch "
                "(least padding); random: every epoch a new random partition into --batch-size "
                "sentences, as a PyTorch DataLoader with shuffle=True (Hugging Face's Trainer)"})


@dataclass
class AddropTaggingTaskConfig(AddropTaggingConfig, AddropScheduleConfig):
    pass


class AlignedLabelsDataset(BaseWrapperDataset):
    """Per-subword targets (IGNORE_INDEX at <s>/</s>) from per-word labels and piece counts."""

    def __init__(self, pieces, labels, label_offset: int, label_all_subwords: bool,
                 continuation: torch.Tensor):
        super().__init__(pieces)
        self.labels = labels
        self.label_offset = label_offset
        self.label_all_subwords = label_all_subwords
        self.continuation = continuation

    def __getitem__(self, index):
        pieces = self.dataset[index].long()
        classes = self.labels[index].long() - self.label_offset
        target = align_labels(pieces, classes, self.label_all_subwords, self.continuation)
        ignore = torch.tensor([IGNORE_INDEX])
        return torch.cat([ignore, target, ignore])


class WordStartsDataset(BaseWrapperDataset):
    """True at each word's first subword, aligned with <s> ... </s>."""

    def __getitem__(self, index):
        starts = word_starts(self.dataset[index].long())
        edge = torch.zeros(1, dtype=torch.bool)
        return torch.cat([edge, starts, edge])


@register_task("addrop_tagging", dataclass=AddropTaggingTaskConfig)
class AddropTaggingTask(CrossTuningMixin, FairseqTask):
    _task_name = "addrop_tagging"

    def __init__(self, cfg: AddropTaggingTaskConfig, dictionary: Dictionary,
                 label_dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self.label_dictionary = label_dictionary
        # class index c <-> label dictionary id c + nspecial
        self.label_names: List[str] = label_dictionary.symbols[label_dictionary.nspecial:]
        self.continuation = continuation_labels(self.label_names)
        self.init_cross_tuning()

    @classmethod
    def setup_task(cls, cfg: AddropTaggingTaskConfig, **kwargs):
        paths = [os.path.join(cfg.data, kind, "dict.txt") for kind in ("input", "label")]
        for path in paths:
            if not os.path.isfile(path):
                raise AddropError(f"--data {cfg.data}: missing {path} (prepare the data with "
                                  "addrop-prepare-conll2003)")
        dictionary = Dictionary.load(paths[0])
        # RoBERTa-style checkpoints have a <mask> row; adding it keeps their embedding size
        dictionary.add_symbol("<mask>")
        label_dictionary = Dictionary.load(paths[1])
        if len(label_dictionary) <= label_dictionary.nspecial:
            raise AddropError(f"{paths[1]}: no labels")
        logger.info(f"[input] dictionary: {len(dictionary)} types; "
                    f"[label] {len(label_dictionary) - label_dictionary.nspecial} labels")
        return cls(cfg, dictionary, label_dictionary)

    def get_batch_iterator(self, dataset, **kwargs):
        if self.cfg.batch_order == "random" and dataset is self.datasets.get("train"):
            return self._random_batches(dataset, **kwargs)
        return super().get_batch_iterator(dataset, **kwargs)

    def _random_batches(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                        ignore_invalid_inputs=False, seed=1, num_shards=1, shard_id=0,
                        num_workers=0, epoch=1, data_buffer_size=0, skip_remainder_batch=False,
                        **unused):
        if not max_sentences or max_tokens:
            raise AddropError(f"--batch-order random makes batches of --batch-size sentences: give "
                              f"--batch-size and no --max-tokens (got --batch-size {max_sentences}, "
                              f"--max-tokens {max_tokens})")
        if dataset in self.dataset_to_epoch_iter:
            return self.dataset_to_epoch_iter[dataset]
        indices = np.arange(len(dataset))
        if max_positions is not None:
            indices = self.filter_indices_by_size(indices, dataset, max_positions,
                                                  ignore_invalid_inputs)

        def partition(_dataset, epoch):
            # called by fairseq for every epoch, so a resumed run draws the same batches
            with data_utils.numpy_seed(seed, epoch):
                order = np.random.permutation(indices)
            return [order[i:i + max_sentences] for i in range(0, len(order), max_sentences)]

        iterator = iterators.EpochBatchIterator(
            dataset=dataset, collate_fn=dataset.collater, batch_sampler=partition, seed=seed,
            num_shards=num_shards, shard_id=shard_id, num_workers=num_workers, epoch=epoch,
            buffer_size=data_buffer_size, skip_remainder_batch=skip_remainder_batch)
        self.dataset_to_epoch_iter[dataset] = iterator
        return iterator

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    prepare_command = "addrop-prepare-conll2003"

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        self.check_binarized(split, epoch)

        def load(kind):
            path = os.path.join(self.cfg.data, kind, split)
            dataset = data_utils.load_indexed_dataset(path, None, dataset_impl="mmap")
            if dataset is None:
                raise AddropError(f"--data {self.cfg.data}: no {kind} data for split {split!r} "
                                  f"({path}.bin/.idx)")
            return dataset

        tokens, pieces, labels = load("input"), load("pieces"), load("label")
        self._check_consistent(split, tokens, pieces, labels)
        src_tokens = PrependTokenDataset(AppendTokenDataset(tokens, self.dictionary.eos()),
                                         self.dictionary.bos())
        dataset = NestedDictionaryDataset({
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(src_tokens, pad_idx=self.dictionary.pad()),
                "src_lengths": NumelDataset(src_tokens, reduce=False),
            },
            "target": RightPadDataset(
                AlignedLabelsDataset(pieces, labels, self.label_dictionary.nspecial,
                                     self.cfg.label_all_subwords, self.continuation),
                pad_idx=IGNORE_INDEX),
            "word_starts": RightPadDataset(WordStartsDataset(pieces), pad_idx=0),
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(src_tokens, reduce=True),
        }, sizes=[src_tokens.sizes])
        if not self.cfg.no_shuffle:
            # seeded as at epoch 1 whatever the epoch: an uninterrupted run loads the split once,
            # at epoch 1, and a run resumed at epoch E (which loads it at E) must order it alike
            with data_utils.numpy_seed(self.cfg.seed, 1):
                order = np.random.permutation(len(dataset))
            # length first, random among equal lengths: batches with little padding
            dataset = SortDataset(dataset, sort_order=[order, src_tokens.sizes])
        logger.info(f"{split}: {len(dataset)} sentences")
        self.datasets[split] = dataset
        return dataset

    def _check_consistent(self, split, tokens, pieces, labels) -> None:
        """Catches data written for another dictionary or truncated files before training."""
        if not len(tokens) == len(pieces) == len(labels):
            raise AddropError(f"--data {self.cfg.data} split {split}: {len(tokens)} token lines, "
                              f"{len(pieces)} piece lines and {len(labels)} label lines differ")
        if len(tokens) == 0:
            raise AddropError(f"--data {self.cfg.data} split {split}: no sentences")
        if not np.array_equal(pieces.sizes, labels.sizes):
            bad = int(np.nonzero(pieces.sizes != labels.sizes)[0][0])
            raise AddropError(f"--data {self.cfg.data} split {split}, sentence {bad}: "
                              f"{pieces.sizes[bad]} words but {labels.sizes[bad]} labels")
        lowest, highest = self.label_dictionary.nspecial, len(self.label_dictionary) - 1
        for index in range(len(tokens)):
            count, label_ids = pieces[index], labels[index]
            if int(count.sum()) != tokens.sizes[index] or (count.numel() and int(count.min()) < 1):
                raise AddropError(f"--data {self.cfg.data} split {split}, sentence {index}: word "
                                  f"piece counts {count.tolist()} do not cover its "
                                  f"{tokens.sizes[index]} subwords")
            if label_ids.numel() and not (
                    lowest <= int(label_ids.min()) and int(label_ids.max()) <= highest):
                raise AddropError(f"--data {self.cfg.data} split {split}, sentence {index}: label ids "
                                  f"{label_ids.tolist()} outside the label dictionary")

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    def labels_of(self, classes: List[int]) -> List[str]:
        return [self.label_names[c] for c in classes]

    def word_predictions(self, predictions: torch.Tensor, sample) -> List[List[str]]:
        """The predicted label of every word: the class at its first subword."""
        starts = sample["word_starts"].to(predictions.device)
        return [self.labels_of(predictions[row][starts[row]].tolist())
                for row in range(predictions.size(0))]

    def tagging_counts(self, predictions: torch.Tensor, sample) -> Dict[str, int]:
        """Validation statistics for one batch: seqeval entity counts and word accuracy."""
        starts = sample["word_starts"].to(predictions.device)
        target = sample["target"].to(predictions.device)
        gold = [self.labels_of(target[row][starts[row]].tolist()) for row in range(target.size(0))]
        counts = entity_counts(gold, self.word_predictions(predictions, sample))
        return {f"ner_{key}": counts[key] for key in NER_COUNT_KEYS}

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        # int(): with several ranks fairseq sums the logging outputs as tensors, which the
        # meters would keep, and round() of the derived scores would then fail
        totals = {key: int(sum(log.get(f"ner_{key}", 0) for log in logging_outputs))
                  for key in NER_COUNT_KEYS}
        if totals["words"] == 0:  # training batches carry no entity counts
            return
        for key, value in totals.items():
            metrics.log_scalar_sum(f"_ner_{key}", value)

        def score(meters, index):
            tp, pred, gold = (meters[f"_ner_{key}"].sum for key in ("tp", "pred", "gold"))
            return round(100 * precision_recall_f1(tp, pred, gold)[index], 4)

        metrics.log_derived("precision", lambda meters: score(meters, 0))
        metrics.log_derived("recall", lambda meters: score(meters, 1))
        metrics.log_derived("f1", lambda meters: score(meters, 2))
        metrics.log_derived("word_accuracy", lambda meters: round(
            100 * meters["_ner_words_correct"].sum / meters["_ner_words"].sum, 4))

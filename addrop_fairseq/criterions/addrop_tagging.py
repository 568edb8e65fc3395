"""Token-level cross entropy with AD-DROP (NER)."""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.logging import metrics

from ..config import AddropConfig
from ..errors import AddropError
from ..data.ner import IGNORE_INDEX
from .two_pass import AddropCriterionMixin


@dataclass
class AddropTaggingCriterionConfig(AddropConfig):
    addrop_modules: str = field(default="encoder_self", metadata={
        "help": "attention kinds to mask; a tagger has only encoder_self"})


@register_criterion("addrop_tagging", dataclass=AddropTaggingCriterionConfig)
class AddropTaggingCriterion(AddropCriterionMixin, FairseqCriterion):
    """Cross entropy over the labelled subwords (never <s>, </s> or padding).

    sample_size is the number of labelled positions, so the gradient is that of the mean loss.
    """

    def __init__(self, task, cfg: AddropTaggingCriterionConfig):
        super().__init__(task)
        if not hasattr(task, "tagging_counts"):
            raise AddropError(f"--criterion addrop_tagging needs --task addrop_tagging, "
                              f"got {type(task).__name__}")
        self.init_addrop(cfg)

    def forward(self, model, sample, reduce=True):
        return self.addrop_call(self._tagging_loss, model, sample, reduce)

    def _tagging_loss(self, model, sample, reduce=True):
        logits = model(**sample["net_input"])[0]
        target = sample["target"]
        labelled = target.ne(IGNORE_INDEX)
        lprobs = F.log_softmax(logits.float(), dim=-1)
        loss = F.nll_loss(lprobs[labelled], target[labelled], reduction="sum" if reduce else "none")
        predictions = logits.detach().argmax(-1)
        sample_size = int(labelled.sum())
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            "n_correct": int((predictions.eq(target) & labelled).sum()),
        }
        if not model.training:
            logging_output.update(self.task.tagging_counts(predictions, sample))
        return loss, sample_size, logging_output

    def attribution_target(self, model, sample, first_output):
        """Negative loss against the first pass's argmax labels (or gold), labelled positions only."""
        target = sample["target"]
        labelled = target.ne(IGNORE_INDEX)
        labels = target if self.addrop_target == "gold" else first_output[0].detach().argmax(-1)
        labels = labels.masked_fill(~labelled, 0)  # IGNORE_INDEX is no class to gather

        def negative_loss(output) -> torch.Tensor:
            lprobs = F.log_softmax(output[0].float(), dim=-1)
            # masked_fill, not boolean indexing: no data-dependent shape, so no device sync
            return lprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).masked_fill(~labelled, 0.0).sum()

        return negative_loss

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        loss, sample_size = total("loss"), total("sample_size")
        metrics.log_scalar("loss", loss / max(sample_size, 1) / math.log(2), sample_size, round=3)
        if sample_size:
            metrics.log_scalar("accuracy", 100.0 * total("n_correct") / sample_size, sample_size,
                               round=2)
        cls.reduce_addrop_metrics(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

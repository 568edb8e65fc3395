"""Label-smoothed cross entropy with AD-DROP (translation)."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)

from ..config import AddropConfig
from .two_pass import AddropCriterionMixin


@dataclass
class AddropLabelSmoothedCrossEntropyConfig(LabelSmoothedCrossEntropyCriterionConfig, AddropConfig):
    pass


@register_criterion("addrop_label_smoothed_cross_entropy",
                    dataclass=AddropLabelSmoothedCrossEntropyConfig)
class AddropLabelSmoothedCrossEntropyCriterion(AddropCriterionMixin,
                                               LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, cfg: AddropLabelSmoothedCrossEntropyConfig):
        super().__init__(task, cfg.sentence_avg, cfg.label_smoothing,
                         ignore_prefix_size=cfg.ignore_prefix_size,
                         report_accuracy=cfg.report_accuracy)
        self.init_addrop(cfg)

    def forward(self, model, sample, reduce=True):
        return self.addrop_call(super().forward, model, sample, reduce)

    def attribution_target(self, model, sample, first_output):
        """Negative loss against the first pass's argmax tokens (or gold), over real tokens."""
        gold = model.get_targets(sample, first_output)
        real = gold.ne(self.padding_idx)
        labels = gold if self.addrop_target == "gold" else first_output[0].detach().argmax(-1)

        def negative_loss(output):
            lprobs = model.get_normalized_probs(output, log_probs=True)
            # masked_fill, not boolean indexing: no data-dependent shape, so no device sync
            return lprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).masked_fill(~real, 0.0).sum()

        return negative_loss

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        cls.reduce_addrop_metrics(logging_outputs)

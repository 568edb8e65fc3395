"""Sentence (pair) classification and regression with AD-DROP (GLUE)."""
# no "from __future__ import annotations": fairseq reads the config's field types at run time

from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import (
    SentencePredictionConfig,
    SentencePredictionCriterion,
)

from ..config import AddropConfig
from .two_pass import AddropCriterionMixin, ModelProxy


@dataclass
class AddropSentencePredictionConfig(SentencePredictionConfig, AddropConfig):
    addrop_modules: str = field(default="encoder_self", metadata={
        "help": "attention kinds to mask; a sentence encoder has only encoder_self"})


@register_criterion("addrop_sentence_prediction", dataclass=AddropSentencePredictionConfig)
class AddropSentencePredictionCriterion(AddropCriterionMixin, SentencePredictionCriterion):
    """fairseq's sentence_prediction loss; in validation it also hands its predictions to the task
    (``glue_pred``/``glue_target``), which computes the GLUE metrics over the whole split."""

    def __init__(self, cfg: AddropSentencePredictionConfig, task):
        super().__init__(cfg, task)
        self.init_addrop(cfg)

    def forward(self, model, sample, reduce=True):
        if model.training:
            return self.addrop_call(super().forward, model, sample, reduce)
        outputs = []

        def recording(*args, **kwargs):  # keeps what the model returned, for the predictions
            outputs.append(model(*args, **kwargs))
            return outputs[-1]

        loss, sample_size, log = super().forward(ModelProxy(model, recording), sample, reduce)
        if "target" in sample:
            logits = outputs[-1][0].detach()
            predictions = logits.view(-1).float() if self.regression_target else logits.argmax(-1)
            log["glue_pred"] = predictions.cpu()
            log["glue_target"] = sample["target"].view(-1).cpu()
        return loss, sample_size, log

    def attribution_target(self, model, sample, first_output):
        """Classification: the logit of the first pass's argmax class (paper Eq. 5), or of the
        gold class. Regression: the negative squared error against the gold score (paper
        Appendix A); a pseudo target would be the prediction itself, whose loss and gradient
        are zero, so regression always uses the gold score."""
        if self.regression_target:
            gold = model.get_targets(sample, first_output).view(-1).float()

            def negative_loss(output):
                return -F.mse_loss(output[0].view(-1).float(), gold, reduction="sum")

            return negative_loss
        if self.addrop_target == "gold":
            labels = model.get_targets(sample, first_output).view(-1)
        else:
            labels = first_output[0].detach().argmax(-1)

        def label_logit(output):
            return output[0].float().gather(-1, labels.unsqueeze(-1)).sum()

        return label_logit

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        cls.reduce_addrop_metrics(logging_outputs)

    def logging_outputs_can_be_summed(self) -> bool:
        # validation outputs carry per-example predictions, which workers must gather, not sum;
        # fairseq asks the criterion instance, which is in eval mode during validation
        return self.training

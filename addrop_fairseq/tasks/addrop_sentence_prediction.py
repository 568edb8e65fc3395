"""GLUE with cross-tuning: fairseq's sentence_prediction task plus the AD-DROP schedule, the encoder
self-attention turned into AD-DROP attention, and each GLUE task's metrics in validation."""
# no "from __future__ import annotations": fairseq reads the config's field types at run time

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial

import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask
from omegaconf import II, OmegaConf, open_dict

from ..data import glue
from ..modules.attention import AddropMultiheadAttention, adopt_attention
from ..config import AddropScheduleConfig
from ..errors import AddropError
from .cross_tuning import CrossTuningMixin

logger = logging.getLogger(__name__)

GLUE_TASK_CHOICES = ChoiceEnum(["auto", "none", *glue.TASK_NAMES])
META_FILE = "glue.json"  # written by addrop-prepare-glue


@dataclass
class AddropSentencePredictionConfig(SentencePredictionConfig, AddropScheduleConfig):
    glue_task: GLUE_TASK_CHOICES = field(default="auto", metadata={
        "help": "which GLUE task's metrics to log in validation (and so to offer to "
                "--best-checkpoint-metric); also fills --num-classes. auto: the task named in "
                f"DATA/{META_FILE} (written by addrop-prepare-glue), else none; none: accuracy "
                "for classification, pearson/spearman for regression"})
    # fairseq's parent takes these two from the criterion's options, which fairseq-validate does
    # not have: "--task addrop_sentence_prediction" could not even be parsed there. The values of
    # a run come from its checkpoint in fairseq-validate, so the criterion's defaults stand in.
    regression_target: bool = II("oc.select:criterion.regression_target,false")
    classification_head_name: str = II(
        "oc.select:criterion.classification_head_name,sentence_classification_head")


def read_meta(data_path: str):
    path = os.path.join(str(data_path).split(os.pathsep)[0], META_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_glue_task(cfg):
    """The GlueTask for ``cfg.glue_task`` (None for 'none'), checked against the data's record."""
    meta = read_meta(cfg.data)
    recorded = meta.get("task") if meta else None
    chosen = str(cfg.glue_task)
    if chosen == "auto":
        chosen = recorded or "none"
    elif recorded and chosen not in ("none", recorded):
        raise AddropError(f"--glue-task {chosen}: the data in {cfg.data} was prepared for "
                          f"{recorded} ({META_FILE})")
    return None if chosen == "none" else glue.get_task(chosen)


def encoder_self_attention_layers(model):
    """The layer stack whose ``self_attn`` AD-DROP masks, for the sentence encoders fairseq's
    sentence_prediction task can build (RoBERTa-style and encoder-decoder models)."""
    encoder = getattr(model, "encoder", None)
    stack = getattr(encoder, "sentence_encoder", encoder)
    layers = getattr(stack, "layers", None)
    if layers is None:
        raise AddropError(f"--task addrop_sentence_prediction cannot find the encoder layers of "
                          f"{type(model).__name__}; use a roberta_* architecture")
    return layers


@register_task("addrop_sentence_prediction", dataclass=AddropSentencePredictionConfig)
class AddropSentencePredictionTask(CrossTuningMixin, SentencePredictionTask):
    _task_name = "addrop_sentence_prediction"
    prepare_command = "addrop-prepare-glue"

    def __init__(self, cfg: AddropSentencePredictionConfig, data_dictionary, label_dictionary):
        super().__init__(cfg, data_dictionary, label_dictionary)
        self.glue = resolve_glue_task(cfg)
        self.metric_names = (self.glue.metrics if self.glue is not None
                             else glue.default_metrics(cfg.regression_target))
        self.positive_class = self._check_labels()
        self._check_special_tokens(read_meta(cfg.data))
        self.init_cross_tuning()

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        task = resolve_glue_task(cfg)
        if task is not None:
            if bool(cfg.regression_target) != task.regression:
                kind, fix = ("regression", "add") if task.regression else ("classification", "remove")
                raise AddropError(f"--glue-task {task.name} is a {kind} task: {fix} "
                                  "--regression-target")
            if cfg.num_classes == -1:
                with open_dict(cfg) if OmegaConf.is_config(cfg) else contextlib.nullcontext():
                    cfg.num_classes = task.num_classes
            elif cfg.num_classes != task.num_classes:
                raise AddropError(f"--num-classes {cfg.num_classes}: {task.display} has "
                                  f"{task.num_classes}")
        if cfg.num_classes < 1:
            raise AddropError("--num-classes is required (or --glue-task to fill it)")
        return super().setup_task(cfg, **kwargs)

    def _check_labels(self):
        """The label dictionary must hold the task's labels; returns F1's positive class index."""
        if self.cfg.regression_target:
            return None
        nspecial = self.label_dictionary.nspecial
        names = [self.label_dictionary[i] for i in range(nspecial, len(self.label_dictionary))
                 if self.label_dictionary[i] != "<mask>"]  # fairseq adds <mask> to every dict
        if len(names) != self.cfg.num_classes:
            raise AddropError(f"--num-classes {self.cfg.num_classes}, but the label dictionary "
                              f"{os.path.join(self.cfg.data, 'label', 'dict.txt')} has "
                              f"{len(names)} labels ({', '.join(names)})")
        if self.glue is None:
            return None
        unknown = [n for n in names if n not in self.glue.labels]
        if unknown:
            raise AddropError(f"label {unknown[0]!r} in {os.path.join(self.cfg.data, 'label')} is "
                              f"not a {self.glue.display} label ({', '.join(self.glue.labels)})")
        positive = self.glue.positive_label
        return names.index(positive) if positive is not None else None

    def _check_special_tokens(self, meta) -> None:
        if not meta or "init_token" not in meta:
            return
        expected = (meta["init_token"], meta.get("separator_token"))
        if (self.cfg.init_token, self.cfg.separator_token) != expected:
            flags = f"--init-token {expected[0]}" + (
                f" --separator-token {expected[1]}" if expected[1] is not None else "")
            logger.warning(f"the data in {self.cfg.data} was prepared for {flags} "
                           f"({meta.get('layout')} layout); this run uses --init-token "
                           f"{self.cfg.init_token} --separator-token {self.cfg.separator_token}")

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        layers = encoder_self_attention_layers(model)
        if not any(isinstance(getattr(layer, "self_attn", None), AddropMultiheadAttention)
                   for layer in layers):
            adopt_attention(layers, "self_attn", "encoder_self")
        return model

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        predictions = [log["glue_pred"] for log in logging_outputs if "glue_pred" in log]
        if not predictions:
            return
        # reduce_metrics runs once per validation batch: the metrics are derived from the
        # predictions concatenated over the whole split, never averaged over batches
        metrics.log_concat_tensor("_glue_pred", torch.cat(predictions))
        metrics.log_concat_tensor(
            "_glue_target", torch.cat([log["glue_target"] for log in logging_outputs
                                       if "glue_pred" in log]))
        for name in self.metric_names:
            if name == "accuracy":
                continue  # fairseq's sentence_prediction criterion logs it already
            metrics.log_derived(name, partial(self._derived_metric, name))

    def _derived_metric(self, name, meters):
        predictions = meters["_glue_pred"].tensor.numpy()
        targets = meters["_glue_target"].tensor.numpy()
        positive = self.positive_class if self.positive_class is not None else 1
        return 100.0 * glue.glue_metrics([name], predictions, targets, positive)[name]

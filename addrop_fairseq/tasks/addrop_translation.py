"""Translation with cross-tuning: fairseq's translation task plus the AD-DROP schedule."""

from dataclasses import dataclass

from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..config import AddropScheduleConfig
from .cross_tuning import CrossTuningMixin


@dataclass
class AddropTranslationConfig(TranslationConfig, AddropScheduleConfig):
    pass


@register_task("addrop_translation", dataclass=AddropTranslationConfig)
class AddropTranslationTask(CrossTuningMixin, TranslationTask):
    _task_name = "addrop_translation"
    prepare_command = "addrop-prepare-translation (or fairseq-preprocess)"

    def __init__(self, cfg: AddropTranslationConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.init_cross_tuning()

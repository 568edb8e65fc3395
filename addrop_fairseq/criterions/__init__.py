from . import addrop_label_smoothed_cross_entropy  # noqa: F401
from . import addrop_tagging  # noqa: F401
from . import addrop_sentence_prediction  # noqa: F401

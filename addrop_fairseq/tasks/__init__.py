from . import addrop_translation  # noqa: F401
from . import addrop_tagging  # noqa: F401
from . import addrop_sentence_prediction  # noqa: F401

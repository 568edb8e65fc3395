from . import addrop_transformer  # noqa: F401
from . import addrop_tagger  # noqa: F401
from . import addrop_marian  # noqa: F401
from . import addrop_hf_encoder  # noqa: F401

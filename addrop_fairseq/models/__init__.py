from . import addrop_transformer  # noqa: F401

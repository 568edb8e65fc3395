from . import addrop_translation  # noqa: F401

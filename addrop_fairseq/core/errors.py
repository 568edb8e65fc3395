"""The one error class of the package, defined where the torch-only core can raise it."""


class AddropError(ValueError):
    """Bad option or input; the message names the bad value and what is allowed."""

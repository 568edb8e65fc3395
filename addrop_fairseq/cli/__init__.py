"""The installed commands, one thin module each (``addrop-NAME`` -> ``cli/NAME.py``).

Each module parses its arguments and calls library code elsewhere in the package; ``policy.run``
gives every command the same process policy (one-line errors, exit codes, warning filters).
Nothing outside this package imports it.
"""

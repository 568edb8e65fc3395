"""Comparing arms (plain fine-tuning, AD-DROP settings) over seeds: specs, runs, statistics, plots.

Library code behind ``addrop-compare``; it knows fairseq only through its command lines and
JSON logs, so that any task of this plugin can be compared the same way.
"""

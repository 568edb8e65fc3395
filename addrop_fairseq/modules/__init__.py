"""fairseq modules with AD-DROP (as fairseq names its layers' parts): the attention module."""

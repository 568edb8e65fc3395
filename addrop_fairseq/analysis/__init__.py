"""The paper's analyses as library code: attribution maps (Fig. 1), the prior experiment
(section 2.2, Fig. 2) and a faithfulness probe of the attributions.

Every analysis runs the training code itself: the criteria's attribution targets, the attention
module's record/apply modes, ``step.addrop_forward`` and ``mask.addrop_mask``; the commands
``addrop-plot-attribution``, ``addrop-prior-experiment`` and ``addrop-probe-attribution``
(``cli/``) are thin command lines over this package.
"""

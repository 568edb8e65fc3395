"""AD-DROP (attribution-driven dropout, NeurIPS 2022) as a fairseq plugin: --user-dir addrop_fairseq.

Importing registers the models, criteria and tasks, and lets torch's ``weights_only`` loader read
fairseq checkpoints (both must be in place before fairseq's first ``torch.load``); it changes no
other process-wide state. The commands in ``addrop_fairseq.cli`` set their own process policy.
"""
import os

from .checkpoint import allow_fairseq_checkpoints, name_corrupt_checkpoints

# fairseq's --user-dir / common.user_dir: the one absolute path of this plugin
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))

allow_fairseq_checkpoints()
name_corrupt_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registers the components)
from .tasks.resume import check_restarts  # noqa: E402

check_restarts()

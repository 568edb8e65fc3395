"""AD-DROP (attribution-driven dropout, NeurIPS 2022) as a fairseq plugin: --user-dir addrop_fairseq."""
from .checkpoint import allow_fairseq_checkpoints, name_corrupt_checkpoints
from .errors import install_excepthook

allow_fairseq_checkpoints()
name_corrupt_checkpoints()
install_excepthook()

from . import criterions, models, tasks  # noqa: E402,F401  (registers the components)

"""AD-DROP (attribution-driven dropout, NeurIPS 2022) as a fairseq plugin: --user-dir addrop_fairseq."""
from .checkpoint import allow_fairseq_checkpoints, name_corrupt_checkpoints
from .errors import install_excepthook
from .warning_filters import filter_harmless_warnings

allow_fairseq_checkpoints()
name_corrupt_checkpoints()
install_excepthook()
filter_harmless_warnings()

from . import criterions, models, tasks  # noqa: E402,F401  (registers the components)
from .tasks.resume import check_restarts  # noqa: E402

check_restarts()

from .checkpoint import (CheckpointError, CheckpointNotFoundError,
                         check_checkpoint_file, load_local_checkpoint)
from .compat import apply as apply_compat
from .fileio import AtomicLocalBackend, atomic_write

__all__ = [
    'apply_compat', 'load_local_checkpoint', 'check_checkpoint_file',
    'CheckpointError', 'CheckpointNotFoundError', 'AtomicLocalBackend',
    'atomic_write'
]

from .compat import apply as apply_compat
from .compat import load_local_checkpoint

__all__ = ['apply_compat', 'load_local_checkpoint']

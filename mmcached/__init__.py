"""mmcached: cached attention for MMDetection and MMPretrain.

Importing it applies the compatibility fixes (``mmcached.utils.compat``) and
registers every mmcached module, so configs only need
``custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)``.
"""
from .utils import apply_compat
from .version import __version__

apply_compat()

from . import analysis, datasets, engine, models  # noqa: E402,F401
from .registry import MODELS  # noqa: E402

# Every model class of ours, for checks and docs.
REGISTERED_MODELS = sorted(MODELS.module_dict)

__all__ = ['__version__', 'REGISTERED_MODELS']

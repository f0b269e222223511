"""mmcached: cached attention for MMDetection and MMPretrain.

Importing it applies the compatibility fixes (``mmcached.utils.compat``) and
registers every mmcached module (and our classifiers in mmpretrain's model
hub: :mod:`.utils.model_zoo`), so configs only need
``custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)``.
"""
from .utils import apply_compat
from .version import __version__

apply_compat()

from . import analysis, datasets, engine, models  # noqa: E402,F401
from .registry import MODELS  # noqa: E402
from .utils.model_zoo import register as _register_model_zoo  # noqa: E402

# mmpretrain.list_models / get_model / inference_model see our classifiers
_register_model_zoo()

# Every model class of ours, for checks and docs.
REGISTERED_MODELS = sorted(MODELS.module_dict)

__all__ = ['__version__', 'REGISTERED_MODELS']

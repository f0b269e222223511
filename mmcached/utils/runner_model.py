"""A config's model, built as the toolboxes' Runner builds it, for tools
that need the model without a Runner."""
import copy

import torch.nn as nn
from mmengine.config import Config


def build_runner_model(cfg: Config) -> nn.Module:
    """``cfg.model`` built as ``Runner.from_cfg`` does: the config's
    ``custom_imports`` imported, its ``default_scope`` set, and the
    top-level ``data_preprocessor`` (where mmpretrain configs keep the
    normalisation and ``num_classes``) merged in unless the model has its
    own. Weights are as constructed (no ``init_weights``)."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return MODELS.build(model_cfg)

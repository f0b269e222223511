"""Our classifiers in MMPretrain's model hub.

``mmpretrain.list_models``, ``get_model`` and ``inference_model`` look models
up in ``ModelHub``, which reads mmpretrain's own model index the first time
it is asked (``ModelHub._register_mmpretrain_models``). :func:`register`
wraps that method so that the hub reads ours then too: the models of our
metafiles (``configs/<family>/metafile.yml``, listed by ``model-index.yml``,
shipped in the package as ``mmcached/.mim/``) that mmpretrain builds, the
classifiers; the detectors are mmdet's to build. No weights are listed yet.
"""
import functools
import os.path as osp
from typing import List

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_INDEX = osp.join(PACKAGE, '.mim', 'model-index.yml')
# a model whose Architecture names one of them is mmdet's to build
DETECTORS = ('Mask R-CNN', 'RetinaNet')


def classifier_models(model_index: str = MODEL_INDEX) -> List:
    """The models of a model index that mmpretrain builds, with their
    config paths absolute (relative ones are relative to the index)."""
    from mmpretrain.apis.model import ModelHub
    from modelindex.load_model_index import load
    index = load(model_index)
    index.build_models_with_collections()
    # a model's Architecture is its collection's (not merged into it)
    arch = {
        c.name: set(getattr(c.metadata, 'architecture', None) or [])
        for c in index.collections
    }
    models = []
    for model in index.models:
        if arch.get(model.in_collection, set()) & set(DETECTORS):
            continue
        model.config = ModelHub._expand_config_path(model,
                                                    osp.dirname(model_index))
        models.append(model)
    return models


def add_to_hub(models) -> None:
    """Put models into mmpretrain's ``ModelHub`` (names compared in lower
    case, as the hub does); a name the hub already has is an error."""
    from mmpretrain.apis.model import ModelHub
    for model in models:
        name = model.name.lower()
        if name in ModelHub._models_dict:
            raise ValueError(
                f'model name {model.name!r} of {model.filepath} is taken by '
                f'{ModelHub._models_dict[name].filepath}; rename it')
        ModelHub._models_dict[name] = model


def register() -> None:
    """Make mmpretrain's hub read our models along with its own
    (idempotent; the index is read at the hub's first use)."""
    from mmpretrain.apis.model import ModelHub
    original = ModelHub.__dict__['_register_mmpretrain_models'].__func__
    if getattr(original, '_mmcached', False):
        return
    done = []

    @functools.wraps(original)
    def _register_mmpretrain_models(cls):
        original(cls)
        if not done:
            done.append(True)
            add_to_hub(classifier_models())

    _register_mmpretrain_models._mmcached = True
    ModelHub._register_mmpretrain_models = classmethod(
        _register_mmpretrain_models)

"""mmcached's registries.

Each is a child of mmengine's root registry with scope ``mmcached`` (so
``type='mmcached.CachedPVT'`` works from any scope), and every class
registered here is registered in the root registry too, so a bare
``type='CachedPVT'`` resolves from the mmdet, mmpretrain and mmengine scopes
alike: child scopes fall back to the root, never to their siblings.
"""
from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import LOOPS as ROOT_LOOPS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import Registry


class _RootMirroredRegistry(Registry):
    """A scoped registry whose registrations are mirrored in its parent."""

    def _register_module(self, module, module_name=None, force=False):
        super()._register_module(module, module_name, force)
        self.parent._register_module(module, module_name, force)


def _registry(name, parent, location):
    return _RootMirroredRegistry(
        name, parent=parent, scope='mmcached', locations=[location])


MODELS = _registry('model', ROOT_MODELS, 'mmcached.models')
DATASETS = _registry('dataset', ROOT_DATASETS, 'mmcached.datasets')
HOOKS = _registry('hook', ROOT_HOOKS, 'mmcached.engine')
LOOPS = _registry('loop', ROOT_LOOPS, 'mmcached.engine')

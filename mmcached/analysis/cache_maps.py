"""What the cache layers do on one image: :class:`CacheRecorder` records
the arguments every cache layer receives in one forward pass, and each
layer turns its record into maps itself (``BaseCacheLayer.cache_maps``:
GRC's self- and cache-attention outputs, Memory Caching's gate weights),
so a new kind of cache layer needs nothing here.
"""
from typing import Dict

import torch
import torch.nn as nn


class CacheRecorder:
    """Context manager recording, for every cache layer in ``layers``
    (name -> layer), the positional arguments of its forward:
    ``records[name]['args']`` is ``(x, o_self, hw_shape)`` for a mixing
    layer, ``(x, hw_shape, host)`` for a replacing one. A layer called
    several times keeps its last call. :meth:`maps` turns them into each
    layer's maps (run the forward in eval mode).
    """

    def __init__(self, layers: Dict[str, nn.Module]):
        self.layers = layers
        self.records: Dict[str, dict] = {}
        self._handles = []

    def __enter__(self):
        for name, layer in self.layers.items():
            rec = self.records.setdefault(name, {})
            self._handles.append(
                layer.register_forward_hook(
                    self._keep_args(rec), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []

    def maps(self, name: str) -> Dict[str, torch.Tensor]:
        """The maps of layer ``name`` from its recorded call."""
        return self.layers[name].cache_maps(*self.records[name]['args'])

    @staticmethod
    def _keep_args(rec):

        def hook(module, args, kwargs, output):
            rec['args'] = tuple(args) + tuple(kwargs.values())

        return hook

"""Cache analysis, above the models: a model's cache layers by name and
their statistics (:mod:`.cache_inspect`), and what they do on one image
(:mod:`.cache_maps`). Each cache layer reports its own statistics and maps
through the contract (``BaseCacheLayer.cache_stats`` / ``cache_maps``)."""
from .cache_inspect import cache_layer_stats, named_cache_layers
from .cache_maps import CacheRecorder

__all__ = ['named_cache_layers', 'cache_layer_stats', 'CacheRecorder']

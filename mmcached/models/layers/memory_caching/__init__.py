"""Memory Caching, laid out as an op package: the layer (:mod:`.layer`),
its options (:mod:`.options`), the math one token at a time
(:mod:`.per_token`), the chunked engine (:mod:`.chunk`) with its custom
autograd node (:mod:`.weighted_read`) and flash-linear-attention path
(:mod:`.fla`), and the float64 reference loop (:mod:`.naive`)."""
from .chunk import MCState, chunk_memory_caching
from .layer import MemoryCachingAttention
from .naive import memory_caching_reference, memory_caching_reference_layer
from .options import MCOptions

__all__ = [
    'MemoryCachingAttention', 'MCOptions', 'MCState', 'chunk_memory_caching',
    'memory_caching_reference', 'memory_caching_reference_layer'
]

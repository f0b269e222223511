# Memory Caching (docs/mc.md) in place of a backbone's attention: a linear
# memory over a bidirectional scan in uniform segments whose final states are
# cached and read through gates (GRM). A config sets `num_segments`.
mc_cache_cfg = dict(
    type='MemoryCachingAttention', segmentation='uniform', causal=False)

# GRC attention (docs/grc.md), the cache layer of every `cached-*` config:
# caches of 0.5 x the layer's channels, in the `released` mode (the authors'
# released code; `paper` follows the paper's equations). A family's base sets
# its backbone's `cache_cfg` to this variable; its variants change a field
# (e.g. `cache_cfg=dict(cache_ratio=0.25)`).
grc_cache_cfg = dict(type='GRCAttention', cache_ratio=0.5, mode='released')

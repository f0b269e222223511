from .grc_attention import (GatedRecurrentCache, GRCAttention, reset_caches,
                            resize_tokens)

__all__ = ['GatedRecurrentCache', 'GRCAttention', 'reset_caches', 'resize_tokens']

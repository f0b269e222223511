from .cache_stats_hook import CacheStatsHook

__all__ = ['CacheStatsHook']

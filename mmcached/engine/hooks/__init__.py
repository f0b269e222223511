from .cache_stats_hook import CacheStatsHook
from .exact_resume_hook import ExactResumeHook

__all__ = ['CacheStatsHook', 'ExactResumeHook']

# What every mmcached config adds to its toolbox's default_runtime.py (each
# family's base lists it after the toolbox's): mmcached imported, so that the
# toolbox's registries find its backbones, cache layers, datasets and hooks;
# and two hooks. CacheStatsHook logs, per cached layer, the mean sigma(lam)
# and the cache and update RMS at the log interval; with ExactResumeHook a
# run resumed with --resume continues as the uninterrupted one would
# (mmcached/engine/hooks/exact_resume_hook.py). A config that sets its own
# custom_hooks list replaces this one (keep these two in it).
custom_imports = dict(imports=['mmcached'], allow_failed_imports=False)
custom_hooks = [dict(type='CacheStatsHook'), dict(type='ExactResumeHook')]

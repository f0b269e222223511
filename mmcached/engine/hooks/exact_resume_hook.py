"""A hook that makes a resumed run continue bit-identically."""
from functools import partial
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmcached.registry import HOOKS
from ..runner.loops import (ResumableEpochBasedTrainLoop,
                            ResumableIterBasedTrainLoop)

RESUMABLE = {
    EpochBasedTrainLoop: ResumableEpochBasedTrainLoop,
    IterBasedTrainLoop: ResumableIterBasedTrainLoop,
}


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Make a run killed at any point and resumed with ``--resume`` continue
    as the uninterrupted run would have: same weights, caches, optimizer and
    scheduler states, data order and augmentation draws.

    - ``before_train``: mmengine's ``EpochBasedTrainLoop`` /
      ``IterBasedTrainLoop`` become
      :class:`~mmcached.engine.runner.ResumableEpochBasedTrainLoop` /
      ``ResumableIterBasedTrainLoop`` (subclasses: the same loop, seeded per
      batch from (seed, iteration) and resumable mid-epoch), so that configs
      keep their ``train_cfg``. In a resumed run, the train sampler and the
      workers' seeding get the checkpoint's seeds back: they were built
      before the checkpoint was read, with a new seed where
      ``randomness.seed`` is None.
    - ``before_save_checkpoint``: the sampler's seed goes into
      ``meta['sampler_seed']``; the checkpoint's ``meta.seed`` and
      ``meta.iter`` give every random state at that iteration.

    Exactness needs what an uninterrupted run needs to repeat itself
    (deterministic kernels: CPU, or GPU with ``randomness.deterministic`` and
    ops that have deterministic kernels), the same number of processes and
    batch size, and dataloader workers that are not persistent: a persistent
    worker's random state lives in its process, and a resumed run starts new
    ones (warned).
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._sampler_seed: Optional[int] = None

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if type(loop) in RESUMABLE:
            loop.__class__ = RESUMABLE[type(loop)]
            if isinstance(loop, ResumableIterBasedTrainLoop):
                loop.seed_batches()  # its run() has begun
        elif not isinstance(loop, tuple(RESUMABLE.values())):
            print_log(
                f'ExactResumeHook: {type(loop).__name__} is not '
                "mmengine's epoch or iteration loop; resumed runs of it "
                'are not exact', 'current', 'WARNING')
        if runner.iter > 0:
            self._restore_seeds(runner)

    def _restore_seeds(self, runner) -> None:
        loader = runner.train_dataloader
        sampler = getattr(loader, 'sampler', None)
        if self._sampler_seed is not None and hasattr(sampler, 'seed'):
            sampler.seed = self._sampler_seed
        init_fn = loader.worker_init_fn
        if isinstance(init_fn, partial) and 'seed' in init_fn.keywords \
                and init_fn.keywords['seed'] != runner.seed:
            loader.worker_init_fn = partial(
                init_fn.func, *init_fn.args,
                **dict(init_fn.keywords, seed=runner.seed))
        if loader.num_workers > 0 and loader.persistent_workers:
            print_log(
                'ExactResumeHook: persistent dataloader workers keep their '
                'random state in their processes, which this resumed run '
                'does not have: its augmentations differ from an '
                'uninterrupted run. For exact resumes set '
                'train_dataloader.persistent_workers=False.', 'current',
                'WARNING')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        if hasattr(sampler, 'seed'):
            checkpoint['meta']['sampler_seed'] = sampler.seed

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._sampler_seed = checkpoint.get('meta', {}).get('sampler_seed')

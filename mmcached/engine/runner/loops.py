"""Training loops whose resumed runs continue exactly as uninterrupted ones.

mmengine's loops leave two things to chance across a resume:

- the random state. It flows from the start of the run, so a resumed run
  draws other numbers (augmentations, dropout, drop path, Mixup) than the
  uninterrupted one; saving it with the checkpoint would not do either, as
  validation after an epoch's checkpoint draws from it too, and each rank
  has its own. Here the Python, NumPy and torch (CPU and CUDA) generators
  are seeded before every batch is loaded from (seed, iteration): the state
  at every iteration boundary is a function of what the checkpoint holds
  (``meta.seed``, ``meta.iter``), on every rank.
- a checkpoint saved mid-epoch (``CheckpointHook(by_epoch=False)``):
  ``EpochBasedTrainLoop`` restarts that epoch and trains its first batches
  twice. Here the resumed epoch skips them, by loading them, so that
  dataloader workers draw the same augmentations for the batches after
  them.

:class:`~mmcached.engine.hooks.ExactResumeHook` puts these loops in place of
mmengine's own, so configs keep their ``train_cfg``.
"""
import random

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from mmcached.registry import LOOPS

BATCH, EPOCH = 0, 1  # what a seed is for: a batch, an epoch's start


def seed_everything(seed: int, *key: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every
    CUDA device) from ``seed`` and ``key`` (e.g. what, iteration)."""
    words = np.random.SeedSequence([int(seed) % 2**32, *key]).generate_state(4)
    random.seed(int.from_bytes(words.tobytes(), 'little'))
    np.random.seed(words)
    torch.manual_seed(int(words[0]) << 32 | int(words[1]))


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop``, seeded per batch and resumable
    mid-epoch (see the module docstring). Same arguments."""

    def run_epoch(self) -> None:
        """Iterate one epoch (the rest of it after a mid-epoch resume)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in self._batches():
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _batches(self):
        """(index in epoch, batch) of this epoch's batches still to train;
        the RNGs seeded for each before it is loaded."""
        seed = self.runner.seed
        n = len(self.dataloader)
        done = self._iter - self._epoch * n
        if not 0 <= done <= n:
            print_log(
                f'iteration {self._iter} is not in epoch {self._epoch + 1} '
                f'of {n} batches (another batch size than the checkpoint?): '
                'training the whole epoch', 'current', 'WARNING')
            done = 0
        if done == n:  # resumed after the epoch's last batch
            return
        seed_everything(seed, EPOCH, self._epoch)  # the loader's base seed
        batches = iter(self.dataloader)
        for _ in range(done):
            next(batches)
        if done:
            print_log(
                f'resumed mid-epoch: skipped what epoch {self._epoch + 1} '
                f'trained before the checkpoint ({done} of its {n} batches)',
                'current')
        for idx in range(done, n):
            seed_everything(seed, BATCH, self._iter)
            try:
                data_batch = next(batches)
            except StopIteration:
                return
            yield idx, data_batch


class _SeededBatches:
    """Seeds the RNGs from (seed, iteration) before each batch is loaded."""

    def __init__(self, loop: IterBasedTrainLoop):
        self.loop = loop
        self.batches = loop.dataloader_iterator

    def __iter__(self):
        return self

    def __next__(self):
        seed_everything(self.loop.runner.seed, BATCH, self.loop.iter)
        return next(self.batches)


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop``, seeded per batch (see the module
    docstring); mmengine's own resume already skips the trained batches by
    loading them. Same arguments."""

    def seed_batches(self) -> None:
        """Seed the RNGs before each batch is loaded (idempotent)."""
        if not isinstance(self.dataloader_iterator, _SeededBatches):
            self.dataloader_iterator = _SeededBatches(self)

    def run(self) -> torch.nn.Module:
        self.seed_batches()
        return super().run()

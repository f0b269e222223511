"""Training curves of the caches, in whatever backend the runner logs to."""
from typing import Optional

from mmengine.hooks import Hook, LoggerHook

from mmcached.analysis import cache_layer_stats, named_cache_layers
from mmcached.registry import HOOKS


@HOOKS.register_module()
class CacheStatsHook(Hook):
    """Log, per cached layer, what its cache does while the model trains.

    For every GRC layer (see ``GRCAttention.cache_stats``):
    ``cache_mix/<layer>`` (mean sigma(lam) over heads), ``cache_rms/<layer>``
    (the cache's RMS entry) and ``cache_update_rms/<layer>`` (RMS of its
    last update), with layers named ``stage{i}.layer{j}`` (``layer{j}`` for
    ViT). The values go into the message hub as ``train/...`` scalars just
    before the :class:`~mmengine.hooks.LoggerHook` logs, at its interval, so
    the logger writes them with the loss: into ``vis_data/*.json`` and
    through the visualizer to every backend (TensorBoard, W&B, ...).

    Reading them is cheap (no forward pass: a few norms of tensors the
    layers hold). A model without cache layers (an uncached twin) logs
    nothing.

    Args:
        interval (int, optional): Log every ``interval`` iterations (and at
            the end of an epoch, as the logger does). Default: the
            LoggerHook's interval.
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL)

    def __init__(self, interval: Optional[int] = None):
        if interval is not None and (isinstance(interval, bool)
                                     or not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError(f'CacheStatsHook: interval must be None or an '
                             f'int >= 1, got {interval!r}')
        self.interval = interval
        self._layers = None
        self._logger = None

    def before_train(self, runner) -> None:
        self._layers = named_cache_layers(runner.model)
        loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        self._logger = loggers[0] if loggers else None
        if self.interval is None:
            self.interval = self._logger.interval if self._logger else 50
        if not self._layers:
            runner.logger.info('CacheStatsHook: the model has no cache '
                               'layer; nothing to log')

    def _logs_now(self, runner, batch_idx: int) -> bool:
        # the LoggerHook's own condition, at this hook's interval
        if self.every_n_inner_iters(batch_idx, self.interval):
            return True
        ignore_last = self._logger.ignore_last if self._logger else True
        return self.end_of_epoch(runner.train_dataloader, batch_idx) and (
            not ignore_last or len(runner.train_dataloader) <= self.interval)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self._layers or not self._logs_now(runner, batch_idx):
            return
        hub = runner.message_hub
        for name, layer in self._layers.items():
            for key, value in cache_layer_stats(layer).items():
                hub.update_scalar(f'train/cache_{key}/{name}', value)

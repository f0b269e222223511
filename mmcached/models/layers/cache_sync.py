"""Cache updates averaged across ranks in one collective per step.

Under DDP each rank updates its caches from its own samples; averaging each
update across ranks keeps the caches identical on every rank and built from
all ranks' samples. One blocking ``all_reduce`` per cache layer, inside the
forward (24 per step for Swin-T), costs a round trip each and stalls the
forward. Instead, the caches of a process hand their updates (batch means)
to its :class:`CacheSync`, which

1. collects the updates of a forward (``add``);
2. when the cached backbone's forward ends (a forward hook that
   ``CachedBackboneMixin`` registers), flattens them into one buffer and
   starts one asynchronous ``all_reduce`` (``launch``), which runs while the
   rest of the model computes its forward and the backward runs;
3. at the end of that backward (an autograd callback, as DDP's reducer
   uses), waits for it and writes the averages into the caches (``wait``).

So the caches are up to date when ``train_step`` returns, as they were when
each layer wrote its own. Wherever a cache could be read before that (no
backward after a training forward, a cache used twice in one forward, a
layer outside a cached backbone), the pending updates are written first:
before a cache's forward reads it, before ``state_dict`` (checkpoints) and
``load_state_dict``, and in :func:`sync_caches`. Single-process runs and
``sync_cache=False`` write each update at once and never get here.
"""
from collections import defaultdict
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist


def _queue_after_backward(fn) -> None:
    """Run ``fn`` when the running backward pass ends (as DDP does)."""
    torch.autograd.Variable._execution_engine.queue_callback(fn)


class CacheSync:
    """Averages the cache updates of a process across ranks, in one
    collective per launch (per device; one in practice).

    Args:
        bucketed (bool): Collect and launch as above (default). False:
            one blocking all_reduce per update, as each layer did before
            (kept for comparison: ``tools/analysis/benchmark_cache_sync.py``).
    """

    def __init__(self, bucketed: bool = True):
        self.bucketed = bucketed
        self.pending: List[Tuple[torch.Tensor, torch.Tensor]] = []
        # launched collectives: (work, flat buffer, target caches)
        self.in_flight: List[Tuple[object, torch.Tensor, list]] = []
        self._callback_queued = False

    def busy(self) -> bool:
        return bool(self.pending or self.in_flight)

    def add(self, cache: torch.Tensor, update: torch.Tensor) -> None:
        """Average ``update`` (same shape as ``cache``) across ranks and
        write it into ``cache``: later (bucketed) or now."""
        if not self.bucketed:
            dist.all_reduce(update)
            cache.copy_(update / dist.get_world_size())
            return
        if any(c is cache for c, _ in self.pending):
            self.wait()  # a cache updated twice in one forward: in order
        self.pending.append((cache, update))

    def launch(self, outputs=None) -> None:
        """Start the all_reduce of the pending updates; with ``outputs``
        (tensors that the backward will reach), finish it when that
        backward ends."""
        if not self.pending:
            return
        by_device = defaultdict(list)
        for cache, update in self.pending:
            by_device[update.device].append((cache, update))
        self.pending = []
        for pairs in by_device.values():
            flat = torch.cat([u.reshape(-1) for _, u in pairs])
            work = dist.all_reduce(flat, async_op=True)
            self.in_flight.append((work, flat, [c for c, _ in pairs]))
        for t in _tensors(outputs):
            if t.requires_grad:
                t.register_hook(self._finish_after_backward)

    def _finish_after_backward(self, grad):
        if not self._callback_queued:
            self._callback_queued = True
            _queue_after_backward(self.wait)
        return grad

    @torch.no_grad()
    def wait(self) -> None:
        """Write every pending update into its cache (launching what was
        not launched yet)."""
        self._callback_queued = False
        self.launch()
        world = dist.get_world_size() if self.in_flight else 1
        for work, flat, caches in self.in_flight:
            work.wait()
            flat /= world
            start = 0
            for cache in caches:
                n = cache.numel()
                cache.copy_(flat[start:start + n].view_as(cache))
                start += n
        self.in_flight = []

    def holds(self, cache: torch.Tensor) -> bool:
        """Whether an update of ``cache`` is not written yet."""
        return any(c is cache for c, _ in self.pending) or any(
            c is cache for _, _, caches in self.in_flight for c in caches)


def _tensors(outputs):
    if isinstance(outputs, torch.Tensor):
        yield outputs
    elif isinstance(outputs, (list, tuple)):
        for o in outputs:
            yield from _tensors(o)
    elif isinstance(outputs, dict):
        for o in outputs.values():
            yield from _tensors(o)


_SYNC: Optional[CacheSync] = None


def cache_sync() -> CacheSync:
    """This process's :class:`CacheSync`."""
    global _SYNC
    if _SYNC is None:
        _SYNC = CacheSync()
    return _SYNC


def sync_caches() -> None:
    """Write every cache update still pending in this process (e.g. before
    reading ``memory`` buffers directly after a training forward)."""
    if _SYNC is not None and _SYNC.busy():
        _SYNC.wait()


def before_read(cache: torch.Tensor) -> None:
    """Before ``cache`` is read: write its pending update, if any."""
    if _SYNC is not None and _SYNC.busy() and _SYNC.holds(cache):
        _SYNC.wait()


def launch_after_forward(module, args, outputs) -> None:
    """Forward hook of a cached backbone: start averaging the updates of
    its forward (see the module docstring)."""
    if _SYNC is not None and _SYNC.pending:
        _SYNC.launch(outputs)

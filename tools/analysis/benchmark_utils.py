"""What the benchmarks share: the host settings (``--threads``,
``--keep-heap``) and timing and memory of a training step, variants
interleaved round by round."""
import os
import statistics
import sys
import time
from collections import OrderedDict

import torch

# glibc's tunables: large blocks from the heap, never trimmed back.
_KEEP_HEAP_ENV = {
    'MALLOC_MMAP_THRESHOLD_': '4000000000',
    'MALLOC_TRIM_THRESHOLD_': '40000000000'
}


def keep_heap() -> None:
    """Re-run this script with glibc's allocator told to keep freed memory
    (its tunables are read at process start only); no-op when they are set
    already. Other C libraries ignore these variables."""
    if all(os.environ.get(k) == v for k, v in _KEEP_HEAP_ENV.items()):
        return
    os.environ.update(_KEEP_HEAP_ENV)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)


_KEEP_HEAP_HELP = (
    'glibc only: keep freed memory in the heap, so that steps do not '
    'page-fault on fresh allocations, as with the CUDA caching allocator; '
    'by default glibc returns large blocks to the system and each step '
    'faults them in again')


def add_host_args(parser, keep_heap_help=_KEEP_HEAP_HELP) -> None:
    """``--threads`` and ``--keep-heap``, which :func:`setup_host`
    applies."""
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--keep-heap', action='store_true', help=keep_heap_help)


def add_step_args(parser, batch_size, iters, warmup) -> None:
    """``--device``, ``--batch-size``, ``--iters`` and ``--warmup`` (what
    :func:`measure` runs), and the host settings (:func:`add_host_args`)."""
    parser.add_argument(
        '--device',
        default='cpu',
        help="'cpu', 'cuda' or 'auto' (cuda when available)")
    parser.add_argument('--batch-size', type=int, default=batch_size)
    parser.add_argument('--iters', type=int, default=iters)
    parser.add_argument('--warmup', type=int, default=warmup)
    add_host_args(parser)


def device_of(name) -> torch.device:
    """``--device`` as a device: 'auto' is cuda where available, else
    cpu."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(name)


def setup_host(args) -> str:
    """Apply ``--keep-heap`` (this may re-run the script) and ``--threads``;
    returns how the allocator runs, for the header."""
    heap = 'default allocator'
    if args.keep_heap:
        keep_heap()
        heap = 'heap kept (' + ', '.join(
            f'{k}={v}' for k, v in _KEEP_HEAP_ENV.items()) + ')'
    if args.threads:
        torch.set_num_threads(args.threads)
    return heap


def _saved_bytes(step) -> int:
    """Bytes of distinct storages autograd saves during ``step()``."""
    seen = {}

    def pack(t):
        try:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _memory(step, device):
    """Memory (bytes) of one ``step()``: on CUDA the peak allocated above
    what was before, on CPU what autograd saves."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        _sync(device)
        return torch.cuda.max_memory_allocated() - base
    return _saved_bytes(step)


def timed(step, device, clock=time.perf_counter):
    """Seconds of one ``step()``, the device synchronised around it;
    ``clock``: wall time by default, or e.g. ``time.process_time`` (the
    process's CPU time, which other jobs on a shared CPU disturb less)."""
    _sync(device)
    t0 = clock()
    step()
    _sync(device)
    return clock() - t0


def measure(variants,
            make_step,
            device,
            iters,
            warmup,
            clock=time.perf_counter):
    """Median seconds per step (by ``clock``, see :func:`timed`) and memory
    (bytes) per variant."""
    steps = OrderedDict((k, make_step(m)) for k, m in variants.items())
    mem = OrderedDict()
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        _sync(device)
        mem[name] = _memory(step, device)
    times = {k: [] for k in steps}
    for _ in range(iters):
        for name, step in steps.items():
            times[name].append(timed(step, device, clock))
    return OrderedDict(
        (k, (statistics.median(times[k]), mem[k])) for k in steps)

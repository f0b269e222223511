"""Dataloader workers that die with their training process.

A worker is a child of the training process; when that process dies by a
signal it cannot catch (SIGKILL, the OOM killer), nothing tells the worker,
which then lives on as an orphan (parent 1), holding memory and file
handles. :class:`DieWithParent` asks the kernel to send the worker SIGKILL
when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``), then checks that
the parent has not already died before the request was made; then it runs
the loader's own ``worker_init_fn`` (mmengine's seeding), chained.
"""
import ctypes
import os
import signal
import sys
from typing import Callable, Optional

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """In a child process: be killed when ``parent_pid`` dies. Exits at once
    if it already has. False where the OS offers no such request."""
    if not sys.platform.startswith('linux'):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    # The parent may have died between fork and prctl: we are then
    # re-parented already and the request will never fire.
    if os.getppid() != parent_pid:
        os._exit(1)
    return True


class DieWithParent:
    """A ``worker_init_fn`` that runs ``inner`` (if any), then makes the
    worker die with the process that built the loader. Picklable, for
    loaders whose workers are spawned."""

    def __init__(self,
                 inner: Optional[Callable] = None,
                 parent_pid: Optional[int] = None):
        self.inner = inner
        self.parent_pid = os.getpid() if parent_pid is None else parent_pid

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent_pid)
        if self.inner is not None:
            self.inner(worker_id)


def attach(loader) -> None:
    """Make the workers of a ``DataLoader`` die with this process (kept as
    is where it has no workers or is attached already)."""
    if getattr(loader, 'num_workers',
               0) and not isinstance(loader.worker_init_fn, DieWithParent):
        loader.worker_init_fn = DieWithParent(loader.worker_init_fn)

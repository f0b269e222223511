"""Local files written whole or not at all.

mmengine writes checkpoints through its file backend (``LocalBackend.put``
for local paths), which opens the final name and writes into it: a full disk,
a kill or a preemption during the write leaves a half-written
``epoch_N.pth`` that the next ``--resume`` then trips over.
:class:`AtomicLocalBackend` writes into a temporary file beside the target,
flushes it to disk and renames it over the target (atomic on POSIX), so the
target is either the old file or the complete new one. mmcached registers it
for local paths (:mod:`mmcached.utils.compat`); everything else of
``LocalBackend`` is unchanged.
"""
import errno
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend


def atomic_write(data: Union[bytes, str],
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` atomically (making its folder)."""
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if osp.exists(filepath):  # keep the target's permissions
            os.chmod(tmp, os.stat(filepath).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, filepath)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG,
                                                  errno.EDQUOT):
            raise OSError(
                e.errno, f'could not write {filepath!r} ({e.strerror}); '
                'nothing was overwritten: the previous file and the work '
                "dir's last_checkpoint are as they were. Free some space "
                'and resume with --resume.') from e
        raise


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` / ``put_text`` replace the
    target atomically (see the module docstring)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj, filepath, encoding)

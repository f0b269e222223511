"""Reading checkpoint files: a check that names what is wrong with an
unreadable one, the loader that mmcached registers for local paths, and the
plain state dicts of checkpoint converters."""
import glob
import os
import os.path as osp
import zipfile

import torch
from mmengine.runner.checkpoint import CheckpointLoader

# What ``torch.save(..., _use_new_zipfile_serialization=False)`` files (torch
# < 1.6 and some released weights) start with: the pickled magic number.
_LEGACY_MAGIC = b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.'
_ZIP_MAGIC = b'PK\x03\x04'


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and
    what to do."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist (or is not a file)."""


def _other_checkpoints(filename: str) -> str:
    """' Other checkpoints in its folder: a.pth, b.pth.' (newest first)."""
    folder = osp.dirname(osp.abspath(filename))
    others = [
        p for p in glob.glob(osp.join(folder, '*.pth'))
        if osp.abspath(p) != osp.abspath(filename) and osp.isfile(p)
    ]
    if not others:
        return ''
    others.sort(key=osp.getmtime, reverse=True)
    names = ', '.join(osp.basename(p) for p in others[:5])
    return f' Other checkpoints in {folder}: {names}.'


def _unreadable(filename: str, why: str) -> CheckpointError:
    return CheckpointError(
        f'cannot read checkpoint {filename!r}: {why}. Use another one (an '
        'earlier epoch_*.pth or iter_*.pth) as CHECKPOINT, --resume PATH or '
        'load_from.' + _other_checkpoints(filename))


def check_checkpoint_file(filename: str, verify: bool = True) -> None:
    """Raise :class:`CheckpointError` if ``filename`` is not a readable
    PyTorch checkpoint, without unpickling it.

    Checks that it is a file, not empty, and a PyTorch zip archive with its
    central directory (a file cut short anywhere lacks it) and ``data.pkl``;
    ``verify`` also checks every member's CRC (reads the whole file). Files
    in torch's legacy (pre-1.6) format pass on their header alone.
    """
    if osp.isdir(filename):
        found = sorted(glob.glob(osp.join(filename, '*.pth')))
        hint = f' ({", ".join(osp.basename(p) for p in found[:5])} ' \
            'are there)' if found else ''
        raise CheckpointNotFoundError(
            f'checkpoint {filename!r} is a directory; give a checkpoint file '
            f'in it, e.g. {osp.join(filename, "epoch_N.pth")}{hint}')
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'checkpoint {filename!r} does not exist; check the path '
            '(CHECKPOINT, --resume PATH, load_from, or the path in the work '
            "dir's last_checkpoint)")
    size = osp.getsize(filename)
    if size == 0:
        raise _unreadable(
            filename, 'the file is empty (0 bytes), as an '
            'interrupted copy or save leaves it')
    with open(filename, 'rb') as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head.startswith(_LEGACY_MAGIC):
        return
    if not head.startswith(_ZIP_MAGIC):
        raise _unreadable(
            filename, f'it is not a PyTorch checkpoint (it starts with '
            f'{head[:8]!r}, not a zip archive as torch.save writes)')
    try:
        with zipfile.ZipFile(filename) as zf:
            names = zf.namelist()
            if not any(
                    n.endswith('/data.pkl') or n == 'data.pkl' for n in names):
                raise _unreadable(
                    filename, 'it is a zip archive but not a PyTorch '
                    'checkpoint (no data.pkl in it)')
            bad = zf.testzip() if verify else None
    except zipfile.BadZipFile as e:
        raise _unreadable(
            filename, f'it is truncated or corrupt ({size} bytes, {e}); '
            'an interrupted copy or save leaves such a file') from e
    if bad is not None:
        raise _unreadable(filename, f'its member {bad!r} is corrupt (CRC)')


def load_local_checkpoint(filename, map_location=None):
    """Load a local checkpoint written by ``torch.save``, as torch < 2.6 did
    (unpickled in full: only load checkpoints you trust).

    Registered for local paths by :mod:`mmcached.utils.compat`. A file that
    cannot be read raises :class:`CheckpointError` naming it, whatever the
    way it is broken, instead of the unpickler's own error.
    """
    filename = osp.expanduser(filename)
    check_checkpoint_file(filename, verify=False)
    try:
        ckpt = torch.load(
            filename, map_location=map_location, weights_only=False)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        try:  # a precise reason where the full check finds one
            check_checkpoint_file(filename, verify=True)
        except CheckpointError as precise:
            raise precise from e
        raise _unreadable(filename, f'{type(e).__name__}: {e}') from e
    if not isinstance(ckpt, dict):
        raise _unreadable(
            filename, f'it holds a {type(ckpt).__name__}, not a checkpoint '
            '(a dict with state_dict, or a state dict)')
    return ckpt


def load_state_dict_from(path: str) -> dict:
    """The weights of a checkpoint file: its ``state_dict`` or ``model``
    entry, or the file itself when it is a bare state dict. Loaded through
    mmengine (and so mmcached's compat loader: clear errors for a missing or
    corrupt file)."""
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and key in ckpt:
            return ckpt[key]
    return ckpt


def save_state_dict(state_dict: dict, dst: str) -> None:
    """Save ``{'state_dict': state_dict}`` to ``dst``, making its folder."""
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=state_dict), dst)
    print(f'saved {len(state_dict)} tensors to {dst}')

"""Compatibility of mmengine 0.10.x with the current stack, in one place.

Applied once when ``mmcached`` is imported:

- torch >= 2.6 makes ``torch.load`` default to ``weights_only=True``, and
  mmengine 0.10.7's local checkpoint loader does not say otherwise, so Runner
  checkpoints (message hub with ``HistoryBuffer``, numpy scalars in meta) fail
  to load for ``--resume`` and ``tools/test.py``. We register our own loader
  for local paths through mmengine's ``CheckpointLoader.register_scheme``
  (its extension point), which loads full checkpoints as torch < 2.6 did and
  turns an unreadable file into an error that names the file.

- mmengine 0.10.7 accepts ``_base_ = 'pkg::...'`` only for the packages
  listed in ``mmengine.config.utils.MODULE2PACKAGE``; we add ``mmcached`` so
  that user configs can inherit ours. This needs ``mmcached`` imported before
  the config is parsed, which ``tools/train.py`` and ``tools/test.py`` do.

Only load checkpoints you trust: like mmengine on torch < 2.6, a full
checkpoint is unpickled.
"""
import os.path as osp
import pickle
import zipfile

import torch
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.runner.checkpoint import CheckpointLoader

_applied = False


def load_local_checkpoint(filename, map_location=None):
    """Load a local checkpoint file written by ``torch.save``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist; '
                                'check the path (CHECKPOINT, --resume or '
                                'load_from)')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError,
            RuntimeError) as e:
        raise RuntimeError(
            f'cannot read checkpoint {filename!r}: it is truncated, corrupt '
            f'or not a PyTorch checkpoint ({type(e).__name__}: {e}). '
            'Use another checkpoint, e.g. an earlier epoch_*.pth.') from e


def apply() -> None:
    """Install the compatibility fixes (idempotent)."""
    global _applied
    if _applied:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
    # The same dict object is read by the config parser and the registry.
    MODULE2PACKAGE.setdefault('mmcached', 'mmcached')
    _applied = True

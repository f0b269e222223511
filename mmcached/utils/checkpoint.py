"""Reading and writing the plain state dicts of checkpoint converters."""
import os
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


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

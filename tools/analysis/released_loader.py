"""Import the authors' released GRC module from a path given by the user.

The released code is never part of this repository: ``--reference`` points at
a checkout of ``annosubmission/GRC-Cache`` (its root or its ``core/`` folder)
or at a bare git directory of it, from which ``core/*.py`` are extracted into
a temporary folder. ``timm`` is needed only for a few helpers; when it is not
installed, minimal stand-ins are put in ``sys.modules`` for this process.
"""
import importlib
import os
import os.path as osp
import subprocess
import sys
import tempfile
import types

_FILES = ('GRC_Attention.py', 'pvt_grc.py')


def _core_dir(path: str) -> str:
    """A folder named ``core`` holding the released files."""
    path = osp.abspath(osp.expanduser(path))
    src = None
    for cand in (osp.join(path, 'core'), path):
        if osp.isfile(osp.join(cand, 'GRC_Attention.py')):
            if osp.basename(cand) == 'core':
                return cand
            src = cand
            break
    tmp = tempfile.mkdtemp(prefix='grc_released_')
    core = osp.join(tmp, 'core')
    os.makedirs(core)
    for name in _FILES:
        if src is not None:  # files present but folder not named core
            with open(osp.join(src, name)) as f:
                text = f.read()
        elif osp.isfile(osp.join(path, 'HEAD')):  # bare git dir
            text = subprocess.run(
                ['git', '--git-dir', path, 'show', f'HEAD:core/{name}'],
                check=True,
                capture_output=True,
                text=True).stdout
        else:
            raise FileNotFoundError(
                f'{path} holds neither core/GRC_Attention.py nor a git repo')
        with open(osp.join(core, name), 'w') as f:
            f.write(text)
    return core


def _stub_timm() -> None:
    try:
        import timm  # noqa: F401
        return
    except ImportError:
        pass
    import torch.nn as nn
    from torch.nn.init import trunc_normal_

    def to_2tuple(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    class DropPath(nn.Module):
        """Identity stand-in: equivalence runs use drop_path = 0."""

        def __init__(self, p=0.):
            super().__init__()
            assert p == 0, 'the timm stand-in only supports drop_path=0'

        def forward(self, x):
            return x

    mods = {}
    for name in ('timm', 'timm.models', 'timm.models.layers',
                 'timm.models.registry', 'timm.models.vision_transformer'):
        mods[name] = types.ModuleType(name)
    mods['timm.models.layers'].trunc_normal_ = trunc_normal_
    mods['timm.models.layers'].to_2tuple = to_2tuple
    mods['timm.models.layers'].DropPath = DropPath
    mods['timm.models.registry'].register_model = lambda fn: fn
    mods['timm.models.vision_transformer']._cfg = lambda **kw: kw
    sys.modules.update(mods)


def load_released(path: str):
    """Return ``(GRC_Attention module, pvt_grc module)`` of the release."""
    core = _core_dir(path)
    _stub_timm()
    root = osp.dirname(core)
    if root not in sys.path:
        sys.path.insert(0, root)
    grc = importlib.import_module('core.GRC_Attention')
    pvt = importlib.import_module('core.pvt_grc')
    return grc, pvt

"""`_base_ = 'mmcached::...'` from a config anywhere on disk, with the
editable install (this venv) and with a regular wheel install."""
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE = 'pvt/cached-pvt-tiny_8xb128_in1k.py'

PROBE = """
import sys
import mmcached  # lets mmengine resolve mmcached:: (mmcached/utils/compat.py)
from mmengine.config import Config
cfg = Config.fromfile(sys.argv[1])
path, scope = Config._get_cfg_path('mmcached::{base}', '')
print('RESOLVED', path)
print('SCOPE', cfg.default_scope)
print('RATIO', cfg.model.backbone.cache_cfg.cache_ratio)
print('IMPORTS', cfg.custom_imports['imports'])
""".format(base=BASE)


def _user_config(tmp_path):
    cfg = tmp_path / 'my_config.py'
    cfg.write_text(
        f"_base_ = 'mmcached::{BASE}'\n"
        'model = dict(backbone=dict(cache_cfg=dict(cache_ratio=0.25)))\n')
    return str(cfg)


def _probe(tmp_path, env=None):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    # cwd outside the repo: the repo must not be found by accident.
    r = subprocess.run(
        [sys.executable, str(script),
         _user_config(tmp_path)],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        env=env,
        timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(
        line.split(' ', 1) for line in r.stdout.splitlines()
        if line.split(' ', 1)[0].isupper())


def test_inherit_with_editable_install(tmp_path):
    out = _probe(tmp_path)
    assert osp.realpath(out['RESOLVED']) == osp.join(REPO, 'configs', BASE)
    assert out['SCOPE'] == 'mmpretrain'
    assert float(out['RATIO']) == 0.25
    assert 'mmcached' in out['IMPORTS']


@pytest.mark.slow
def test_inherit_with_wheel_install(tmp_path):
    wheels = tmp_path / 'wheels'
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w',
        str(wheels), REPO
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    wheel, = wheels.glob('mmcached-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert f'mmcached/.mim/configs/{BASE}' in names
    assert 'mmcached/.mim/tools/train.py' in names
    site = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
        str(site),
        str(wheel)
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = _probe(tmp_path, env)
    assert out['RESOLVED'].startswith(str(site))
    assert float(out['RATIO']) == 0.25

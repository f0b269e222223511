"""The command-line tools: --help, and clear errors for bad input."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY_TOOLS = sorted(
    osp.relpath(osp.join(d, f), REPO) for sub in ('tools', 'demo')
    for d, _, fs in os.walk(osp.join(REPO, sub)) for f in fs
    if f.endswith('.py')
    and "__name__ == '__main__'" in open(osp.join(d, f)).read())
SH_TOOLS = [
    'tools/dist_train.sh', 'tools/dist_test.sh', 'tools/slurm_train.sh',
    'tools/slurm_test.sh'
]


def run(*args, timeout=300):
    return subprocess.run(
        list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('tool', PY_TOOLS)
def test_python_tool_help(tool):
    r = run(sys.executable, tool, '--help')
    assert r.returncode == 0, r.stderr
    assert 'usage' in r.stdout.lower()


def test_setup_env_help():
    r = run('bash', 'tools/setup_env.sh', '--help')
    assert r.returncode == 0 and '--venv' in r.stdout


@pytest.mark.parametrize('tool', SH_TOOLS)
def test_shell_tool_usage(tool):
    r = run('bash', tool)
    assert r.returncode == 2 and 'usage' in r.stderr


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_missing_config(tool, tmp_path):
    args = [str(tmp_path / 'nope.py')
            ] + ([] if tool.endswith('train.py') else ['x.pth'])
    r = run(sys.executable, tool, *args)
    assert r.returncode == 2
    assert 'nope.py' in r.stderr and 'does not exist' in r.stderr
    assert 'Traceback' not in r.stderr


def _toy_config(tmp_path):
    cfg = tmp_path / 'toy.py'
    cfg.write_text("default_scope = 'mmdet'\n"
                   "model = dict(type='RetinaNet', backbone=dict(depth=18))\n"
                   "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))\n"
                   "train_dataloader = dict(batch_size=2)\n")
    return str(cfg)


@pytest.mark.parametrize('option,message', [
    ('optim_wraper.optimizer.lr=0.1', "did you mean optim_wrapper"),
    ('model.backbon.depth=50', "model has no key 'backbon'"),
    ('train_dataloader.batch_size.x=1', 'is a int, not a dict'),
])
def test_unknown_cfg_option(tmp_path, option, message):
    r = run(sys.executable, 'tools/train.py', _toy_config(tmp_path),
            '--cfg-options', option)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and 'Traceback' not in r.stderr


def test_flag_of_the_other_toolbox(tmp_path):
    r = run(sys.executable, 'tools/train.py', _toy_config(tmp_path),
            '--no-validate')
    assert r.returncode == 2 and 'only for mmpretrain' in r.stderr


def test_missing_checkpoint(tmp_path):
    r = run(sys.executable, 'tools/test.py', _toy_config(tmp_path),
            str(tmp_path / 'none.pth'))
    assert r.returncode == 2 and 'none.pth' in r.stderr


def test_cli_option_checks():
    from mmengine.config import Config

    from mmcached.utils.cli import CLIError, check_cfg_options
    cfg = Config(dict(a=dict(b=1, c=[dict(d=1)]), e=2))
    check_cfg_options(cfg, ['a.b', 'a.new_leaf', 'a.c.0.d', 'e'])
    for bad in ['x.y', 'a.c.3.d', 'a.c.x', 'e.f']:
        with pytest.raises(CLIError):
            check_cfg_options(cfg, [bad])

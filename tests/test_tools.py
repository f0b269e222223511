"""The command-line tools: --help, and clear errors for bad input."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY_TOOLS = sorted(
    osp.relpath(osp.join(d, f), REPO) for sub in ('tools', 'demo')
    for d, _, fs in os.walk(osp.join(REPO, sub)) for f in fs
    if f.endswith('.py')
    and "__name__ == '__main__'" in open(osp.join(d, f)).read())
DIGITS = 'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py'
SHAPES = 'configs/embedded/mask-rcnn_cached-pvt-mini_fpn_1xb4-10e_shapes.py'
SH_TOOLS = [
    'tools/dist_train.sh', 'tools/dist_test.sh', 'tools/slurm_train.sh',
    'tools/slurm_test.sh', 'tools/slurm_train.sbatch',
    '.dev_scripts/slurm_local.sh'
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


@pytest.fixture
def train_tool(monkeypatch, load_tool):
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    return load_tool('tools/train.py')


@pytest.mark.parametrize('option,message', [
    ('optim_wraper.optimizer.lr=0.1', 'did you mean optim_wrapper'),
    ('model.backbon.depth=50', "model has no key 'backbon'"),
    ('train_dataloader.batch_size.x=1', 'is a int, not a dict'),
])
def test_unknown_cfg_option(train_tool, tmp_path, option, message):
    from mmcached.utils.cli import CLIError
    with pytest.raises(CLIError, match=message):
        train_tool.main([_toy_config(tmp_path), '--cfg-options', option])


def test_flags_are_the_toolbox_own(train_tool, capsys):
    """Flags go to the toolbox's own parser: what it lacks is its error."""
    train = train_tool
    with pytest.raises(SystemExit) as e:
        train.main([DIGITS, '--no-such-flag'])
    assert e.value.code == 2
    assert 'unrecognized arguments: --no-such-flag' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        train.main([DIGITS, '--help'])
    assert e.value.code == 0
    # mmpretrain's train.py has --no-validate, mmdet's does not
    assert '--no-validate' in capsys.readouterr().out


def test_cli_option_checks():
    from mmengine.config import Config

    from mmcached.utils.cli import CLIError, check_cfg_options, runner_keys
    cfg = Config(
        dict(
            model=dict(backbone=dict(depth=1), neck=None),
            lst=[dict(d=1)],
            train_cfg=dict(max_epochs=2),
            e=2))
    known = runner_keys()
    # what the toolboxes' own tools take: existing keys, new leaves, new
    # sections and new top-level keys the Runner reads
    check_cfg_options(cfg, [
        'model.backbone.depth', 'model.backbone.with_cp', 'model.new.x',
        'lst.0.d', 'lst.0.new', 'e', 'find_unused_parameters',
        'model_wrapper_cfg.type', 'compile', 'custom_hooks', 'sync_bn',
        'visualizer.vis_backends', 'brand_new_key'
    ], known)
    for bad, message in [
        ('modle.backbone.depth', 'did you mean model'),
        ('model.backbon.depth', 'did you mean backbone'),
        ('train_cfg.max_epoch', 'did you mean max_epochs'),
        ('find_unused_parameter', 'did you mean find_unused_parameters'),
        ('lst.3.d', 'is a list of 1'),
        ('lst.x', 'is a list of 1'),
        ('e.f', 'is a int, not a dict'),
        ('model.neck.x', 'is None'),
    ]:
        with pytest.raises(CLIError, match=message):
            check_cfg_options(cfg, [bad], known)


def test_data_root_option_reaches_the_dataloaders(monkeypatch):
    """--cfg-options data_root=DIR sets MMCACHED_DATA_ROOT, which every path
    of mmcached's dataset configs is built from."""
    from mmcached.utils.cli import DATA_ROOT_ENV, apply_data_root, load_config
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    apply_data_root(dict(data_root='/datasets/coco/'))
    cfg = load_config(
        osp.join(REPO, 'configs/pvt/retinanet_cached-pvt-t_fpn_1x_coco.py'))
    assert cfg.train_dataloader.dataset.data_root == '/datasets/coco/'
    assert cfg.test_dataloader.dataset.data_root == '/datasets/coco/'
    assert cfg.val_evaluator.ann_file == \
        '/datasets/coco/annotations/instances_val2017.json'
    monkeypatch.delenv(DATA_ROOT_ENV)
    cfg = load_config(
        osp.join(REPO, 'configs/deit/cached-deit-tiny_4xb256_in1k.py'))
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet/'


def test_missing_checkpoint(tmp_path):
    r = run(sys.executable, 'tools/test.py', _toy_config(tmp_path),
            str(tmp_path / 'none.pth'))
    assert r.returncode == 2 and 'none.pth' in r.stderr
    assert 'Traceback' not in r.stderr


# --------------------------------------------------------------------------
# tools/toolbox.py: the toolboxes' own tools, with mmcached imported first
# --------------------------------------------------------------------------
def _user_config(tmp_path):
    cfg = tmp_path / 'my_digits.py'
    cfg.write_text(
        "_base_ = 'mmcached::embedded/cached-vit-mini-p8_1xb64-40e_digits.py'"
        '\nmodel = dict(backbone=dict(cache_cfg=dict(cache_ratio=0.25)))\n')
    return str(cfg)


@pytest.fixture
def toolbox(monkeypatch, load_tool):
    toolbox = load_tool('tools/toolbox.py')
    # what the tools change: restored after each test
    monkeypatch.setattr(sys, 'argv', list(sys.argv))
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    return toolbox


def test_toolbox_tools_read_mmcached_user_configs(toolbox, tmp_path, capsys):
    user = _user_config(tmp_path)
    toolbox.main(['misc/print_config.py', user])
    assert "cache_ratio=0.25" in capsys.readouterr().out
    # builds the model: the toolbox's classes from an mmcached:: base
    toolbox.main(['analysis_tools/get_flops.py', user, '--shape', '32'])
    out = capsys.readouterr().out
    assert 'CachedViT' in out and 'Flops:' in out


def test_toolbox_publish_model_reads_runner_checkpoints(
        toolbox, tmp_path, capsys):
    from mmengine.logging import HistoryBuffer
    src = tmp_path / 'epoch_1.pth'
    # what a Runner checkpoint holds that torch >= 2.6 refuses by default
    torch.save(
        dict(
            meta=dict(seed=np.int64(0)),
            state_dict=dict(w=torch.ones(2)),
            message_hub=dict(log_scalars=dict(loss=HistoryBuffer())),
            optimizer=dict(state={})), src)
    toolbox.main([
        'mmpretrain::model_converters/publish_model.py',
        str(src),
        str(tmp_path / 'published.pth')
    ])
    out = glob.glob(str(tmp_path / 'published_*.pth'))
    assert len(out) == 1, capsys.readouterr()
    published = torch.load(out[0], weights_only=False)
    assert 'optimizer' not in published
    assert torch.equal(published['state_dict']['w'], torch.ones(2))


def test_toolbox_picks_the_toolbox(toolbox):
    from mmcached.utils.cli import CLIError
    assert toolbox.pick_toolbox('misc/print_config.py',
                                [DIGITS])[0] == 'mmpretrain'
    assert toolbox.pick_toolbox('misc/print_config.py', [SHAPES])[0] == 'mmdet'
    assert toolbox.pick_toolbox('mmdet::misc/print_config.py',
                                [])[0] == 'mmdet'
    assert toolbox.pick_toolbox('analysis_tools/shape_bias.py',
                                [])[0] == 'mmpretrain'
    with pytest.raises(CLIError, match='both ship'):
        toolbox.pick_toolbox('model_converters/publish_model.py', ['a.pth'])
    with pytest.raises(CLIError, match='no toolbox ships'):
        toolbox.pick_toolbox('misc/nope.py', [])


def _work_dir_state(work):
    return {
        p: (os.stat(p).st_mtime_ns, os.stat(p).st_size)
        for p in glob.glob(osp.join(work, '**'), recursive=True)
    }


def test_unreadable_checkpoint_stops_before_the_work_dir(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    buf = tmp_path / 'full.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(30000))), buf)
    (work / 'epoch_2.pth').write_bytes(buf.read_bytes()[:20000])
    (work / 'epoch_1.pth').write_bytes(buf.read_bytes())
    before = _work_dir_state(work)
    r = run(sys.executable, 'tools/test.py', DIGITS, str(work / 'epoch_2.pth'),
            '--work-dir', str(work))
    assert r.returncode == 2, r.stderr[-2000:]
    assert 'epoch_2.pth' in r.stderr and 'truncated' in r.stderr
    assert 'epoch_1.pth' in r.stderr  # what to use instead
    assert 'Traceback' not in r.stderr
    assert _work_dir_state(work) == before


@pytest.mark.parametrize('last,message', [
    ('', 'is empty'),
    ('{work}/epoch_3.pth', 'does not exist'),
    ('{work}/epoch_2.pth', 'truncated'),
])
def test_resume_checks_the_last_checkpoint(train_tool, tmp_path, last,
                                           message):
    from mmcached.utils.cli import CLIError
    work = tmp_path / 'work'
    work.mkdir()
    torch.save(dict(state_dict={}), work / 'epoch_1.pth')
    (work / 'epoch_2.pth').write_bytes(b'PK\x03\x04' + b'\0' * 100)
    (work / 'last_checkpoint').write_text(last.format(work=work))
    before = _work_dir_state(work)
    with pytest.raises(CLIError, match=message):
        train_tool.main([DIGITS, '--work-dir', str(work), '--resume'])
    assert _work_dir_state(work) == before


@pytest.mark.parametrize(
    'setup,call,expected',
    [
        ('PYTHON=/opt/py/bin/python', 'mmcached_python /repo',
         '/opt/py/bin/python'),
        ('unset PYTHON; MMCACHED_VENV={venv}', 'mmcached_python /repo',
         '{venv}/bin/python'),
        ('unset PYTHON MMCACHED_VENV', 'mmcached_python {venv}/..',
         '{venv}/../.venv/bin/python'),
        ('GRES=gpu:2', 'slurm_gres_arg cpu 8', '--gres=gpu:2'),
        ('GRES=', 'slurm_gres_arg gpu 8', ''),
        # no GRES and no GPU in the partition (no sinfo here at all): nothing
        ('unset GRES; sinfo() {{ echo "(null)"; }}', 'slurm_gres_arg cpu 8', ''
         ),
        ('unset GRES; sinfo() {{ echo "gpu:8"; }}', 'slurm_gres_arg gpu 8',
         '--gres=gpu:8'),
    ])
def test_launch_script_helpers(tmp_path, setup, call, expected):
    """tools/common.sh: the Python the scripts run, the --gres they ask."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text('')
    (venv / 'bin' / 'python').chmod(0o755)
    (tmp_path / '.venv' / 'bin').mkdir(parents=True)
    (tmp_path / '.venv' / 'bin' / 'python').symlink_to(venv / 'bin' / 'python')
    script = f'source tools/common.sh; {setup.format(venv=venv)}; ' \
        f'{call.format(venv=venv)}'
    r = run('bash', '-c', script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected.format(venv=venv)


def test_free_port():
    r = run('bash', '-c',
            f'source tools/common.sh; free_port {sys.executable}')
    assert r.returncode == 0 and 1024 <= int(r.stdout) < 65536


def test_load_from_is_checked(train_tool, tmp_path):
    from mmcached.utils import CheckpointError
    bad = tmp_path / 'pretrained.pth'
    bad.write_bytes(b'')
    with pytest.raises(CheckpointError, match='pretrained.pth.*empty'):
        train_tool.main([
            DIGITS, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', f'load_from={bad}'
        ])
    assert not (tmp_path / 'work').exists()

"""What the compat layer adds for training: torch.compile with every
family's ``paramwise_cfg`` (plain-dict param groups), ``--amp`` on CPU
(bfloat16 autocast, caches kept in float32), dataloader workers that die
with their training process."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, OPTIM_WRAPPERS, DefaultScope
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmcached  # noqa: F401 - applies the compat layer
from mmcached.models.backbones import CachedViT
from mmcached.models.layers import MemoryCachingAttention
from mmcached.utils.workers import DieWithParent

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(REPO,
                  'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py')
# one config per family whose optim_wrapper has a paramwise_cfg
FAMILIES = [
    'configs/deit/cached-deit-tiny_4xb256_in1k.py',
    'configs/deit/mc-deit-small_4xb256_in1k.py',
    'configs/pvt/cached-pvt-tiny_8xb128_in1k.py',
    'configs/pvtv2/cached-pvtv2-b0_8xb128_in1k.py',
    'configs/swin/cached-swin-tiny_16xb64_in1k.py',
    'configs/swin/mask-rcnn_cached-swin-t-p4-w7_fpn_1x_coco.py',
    'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py',
]


def _plain(obj):
    if isinstance(obj, dict):
        return type(obj) is dict and all(_plain(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_plain(v) for v in obj)
    return True


def _build(cfg):
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        return model, build_optim_wrapper(model, cfg.optim_wrapper)


@pytest.mark.parametrize('config', FAMILIES)
def test_param_groups_are_plain_dicts(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.optim_wrapper.get('paramwise_cfg'), 'a config to test'
    _, optim_wrapper = _build(cfg)
    groups = optim_wrapper.optimizer.param_groups
    assert len(groups) > 1  # paramwise_cfg made groups
    assert all(_plain(g) for g in groups)
    # the paramwise settings survive the conversion
    assert {g.get('weight_decay') for g in groups} >= {0.0}


def test_optimizer_step_traces_without_graph_break():
    """What crashed: dynamo tracing AdamW over paramwise param groups."""
    cfg = Config.fromfile(DIGITS)
    cfg.model.backbone.arch.num_layers = 1
    model, optim_wrapper = _build(cfg)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(optim_wrapper.optimizer.step)()
    assert explained.graph_break_count == 0, explained.break_reasons


def _config(tmp_path, body):
    path = tmp_path / 'config.py'
    path.write_text(f'_base_ = {DIGITS!r}\n' +
                    'train_dataloader = dict(dataset=dict(indices=128))\n'
                    'train_cfg = dict(max_epochs=1)\n'
                    'val_cfg = None\nval_dataloader = None\n'
                    'val_evaluator = None\n' + textwrap.dedent(body))
    return str(path)


def _train(config, work, *args):
    r = subprocess.run([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work), *args
    ],
                       cwd=REPO,
                       capture_output=True,
                       text=True,
                       timeout=900,
                       env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r.stdout + r.stderr


def _caches(state):
    caches = {k: v for k, v in state.items() if k.endswith('cache.memory')}
    assert caches
    return caches


@pytest.mark.slow
def test_train_compiled(tmp_path):
    """tools/train.py --cfg-options compile=...: trains, with the digits
    config's paramwise_cfg (backend 'eager': dynamo's tracing, where the
    param groups broke, without inductor's code generation, which takes
    minutes here)."""
    log = _train(
        _config(tmp_path, ''), tmp_path / 'work', '--cfg-options',
        'compile.backend=eager', 'train_dataloader.batch_size=32')
    assert 'Epoch(train) [1][4/4]' in log
    state = torch.load(
        tmp_path / 'work' / 'epoch_1.pth', weights_only=False)['state_dict']
    assert all(c.abs().sum() > 0 for c in _caches(state).values())


@pytest.mark.slow
def test_amp_trains_on_cpu(tmp_path):
    """tools/train.py --amp on a machine without a GPU: bfloat16 autocast,
    caches saved in float32."""
    assert not torch.cuda.is_available()
    log = _train(_config(tmp_path, ''), tmp_path / 'work', '--amp')
    assert 'AMP without a GPU: bfloat16 autocast on CPU' in log
    assert 'Epoch(train) [1][2/2]' in log
    ckpt = torch.load(tmp_path / 'work' / 'epoch_1.pth', weights_only=False)
    for name, cache in _caches(ckpt['state_dict']).items():
        assert cache.dtype == torch.float32, name
        assert cache.abs().sum() > 0, name
    assert 'loss_scaler' in ckpt['optimizer']


def _mc_state_tensors(state):
    for value in vars(state).values():
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def test_amp_optim_wrapper_on_cpu():
    """The wrapper --amp selects: autocast to bfloat16 on CPU; GRC caches
    and MC states stay float32; the step updates the weights."""
    torch.manual_seed(0)
    model = CachedViT(
        arch=dict(
            embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32),
        img_size=32,
        patch_size=8).train()
    wrapper = OPTIM_WRAPPERS.build(
        dict(
            type='AmpOptimWrapper',
            loss_scale='dynamic',
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    assert wrapper.cast_dtype == torch.bfloat16
    before = [p.detach().clone() for p in model.parameters()]
    seen = []
    model.layers[0].attn.grc.register_forward_hook(
        lambda m, args, out: seen.append(out.dtype))
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 3, 32, 32))[0]
        wrapper.update_params(out.float().square().mean())
    assert seen == [torch.bfloat16]  # autocast was on
    caches = [b for n, b in model.named_buffers() if n.endswith('memory')]
    assert caches and all(c.dtype == torch.float32 for c in caches)
    assert all(c.abs().sum() > 0 for c in caches)
    assert any(not torch.equal(a, p)
               for a, p in zip(before, model.parameters()))

    mc = MemoryCachingAttention(
        embed_dims=16, num_heads=2, segment_size=4, causal=True)
    with wrapper.optim_context(mc):
        y, state = mc.stream(torch.randn(2, 6, 16))
    assert y.dtype == torch.bfloat16
    tensors = list(_mc_state_tensors(state))
    assert tensors and all(t.dtype == torch.float32 for t in tensors)
    with pytest.raises(ValueError, match='bfloat16 only'):
        OPTIM_WRAPPERS.build(
            dict(
                type='AmpOptimWrapper',
                dtype='float16',
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    # a GPU run's optimizer state (with its scaler's) loads
    wrapper.load_state_dict(
        dict(wrapper.state_dict(), loss_scaler=dict(scale=1024.)))
    assert isinstance(wrapper, OptimWrapper)


class _Pids(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return os.getpid()


def test_loaders_chain_the_worker_init():
    loader = Runner.build_dataloader(
        dict(
            dataset=_Pids(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=2),
        seed=3)
    assert isinstance(loader.worker_init_fn, DieWithParent)
    # mmengine's seeding still runs in the workers, after our part
    assert loader.worker_init_fn.inner.func.__name__ == 'worker_init_fn'
    assert loader.worker_init_fn.parent_pid == os.getpid()
    assert len({int(p) for b in loader for p in b} - {os.getpid()}) == 2
    no_workers = Runner.build_dataloader(
        dict(
            dataset=_Pids(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0))
    assert no_workers.worker_init_fn is None


# Runs a script as its child while being the "subreaper" of its
# descendants: a worker orphaned by the script's death is re-parented here,
# not to PID 1 (where some init systems reap orphans themselves, which would
# hide a surviving worker). Prints the orphans still alive after 20 s.
REAPER = textwrap.dedent('''
    import ctypes, os, signal, subprocess, sys, time
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    child = subprocess.run([sys.executable] + sys.argv[1:])
    print('exit', child.returncode, flush=True)

    def orphans():
        found = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open(f'/proc/{pid}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != 'Z':
                found.append(int(pid))
        return found

    deadline = time.time() + 20
    while orphans() and time.time() < deadline:
        time.sleep(0.2)
    left = orphans()
    print('survivors', *left, flush=True)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    while True:  # reap them all
        try:
            os.wait()
        except ChildProcessError:
            break
    ''')


def _kill_while_workers_busy(tmp_path, fixed=True):
    """Survivors among the workers of a process killed with SIGKILL while
    they are busy (each sleeps 120 s on a sample)."""
    script = tmp_path / 'run.py'
    script.write_text(
        textwrap.dedent(f'''
        import os, signal, sys, time
        sys.path.insert(0, {REPO!r})
        import mmcached
        from mmengine.runner import Runner
        from torch.utils.data import Dataset
        if not {fixed!r}:
            Runner.build_dataloader = staticmethod(
                Runner.build_dataloader.__wrapped__)

        class Slow(Dataset):
            def __len__(self):
                return 64
            def __getitem__(self, i):
                if i >= 4:
                    time.sleep(120)  # busy when the parent dies
                return os.getpid()

        loader = Runner.build_dataloader(dict(
            dataset=Slow(), batch_size=2, num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
        it = iter(loader)
        pids = {{int(p) for _ in range(2) for p in next(it)}}
        assert len(pids) == 2, pids
        time.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)
        '''))
    reaper = tmp_path / 'reaper.py'
    reaper.write_text(REAPER)
    proc = subprocess.run(
        [sys.executable, str(reaper), str(script)],
        capture_output=True,
        text=True,
        timeout=300)
    lines = {
        ln.split()[0]: ln.split()[1:]
        for ln in proc.stdout.splitlines() if ln.strip()
    }
    assert lines.get('exit') == [str(-signal.SIGKILL)], proc.stderr[-2000:]
    return lines['survivors']


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG')
def test_workers_die_with_a_killed_process(tmp_path):
    """A process killed with SIGKILL while its workers are busy leaves no
    worker behind; without the compat fix both workers survive."""
    assert _kill_while_workers_busy(tmp_path) == []
    assert len(_kill_while_workers_busy(tmp_path, fixed=False)) == 2


def test_die_with_parent_chains_and_pickles():
    import pickle
    seen = []
    init = DieWithParent(seen.append, parent_pid=os.getppid())
    clone = pickle.loads(pickle.dumps(DieWithParent(None, parent_pid=1)))
    assert clone.parent_pid == 1 and clone.inner is None
    assert isinstance(ConfigDict(a=1), dict)
    # run in a child, where the parent check applies
    pid = os.fork()
    if pid == 0:
        try:
            DieWithParent(None, parent_pid=os.getppid())(0)
            os._exit(0)
        except BaseException:
            os._exit(3)
    assert os.waitpid(pid, 0)[1] == 0
    # a child whose parent is already gone exits at once
    pid = os.fork()
    if pid == 0:
        DieWithParent(None, parent_pid=-5)(0)
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 1
    del init

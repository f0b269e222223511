"""Compatibility of mmengine 0.10.x with the current stack, in one place.

Applied once when ``mmcached`` is imported (each fix is idempotent):

- **Checkpoints on torch >= 2.6.** ``torch.load`` defaults to
  ``weights_only=True`` and mmengine 0.10.7's local loader does not say
  otherwise, so Runner checkpoints (message hub with ``HistoryBuffer``, numpy
  scalars in meta) fail to load. We register our loader for local paths
  through mmengine's ``CheckpointLoader.register_scheme`` (its extension
  point): full checkpoints load as on torch < 2.6, and an unreadable file
  (missing, a directory, empty, truncated anywhere, not a checkpoint) raises
  :class:`~mmcached.utils.checkpoint.CheckpointError` naming it.
- **Atomic checkpoint writes.** Local files written through mmengine's file
  backend (checkpoints among them) go through
  :class:`~mmcached.utils.fileio.AtomicLocalBackend` (``register_backend``,
  mmengine's extension point): a full disk or a kill never leaves a
  half-written ``epoch_N.pth``.
- **``mmcached::`` configs.** mmengine accepts ``_base_ = 'pkg::...'`` only
  for the packages in ``mmengine.config.utils.MODULE2PACKAGE``; we add
  ``mmcached``. Needs ``mmcached`` imported before the config is parsed
  (``tools/train.py``, ``tools/test.py`` and ``tools/toolbox.py`` do).
- **``mmcached::`` configs build in their toolbox's scope.** mmengine marks
  every typed dict that a ``pkg::`` base brings with ``_scope_=pkg``, so
  that ``mmdet::`` dicts build from mmdet's registries. Our configs are
  mmdet or mmpretrain configs (``default_scope``) whose bare type names build
  from that toolbox's registries, ours mirrored in the root; marked
  ``_scope_='mmcached'`` they would build from mmcached's registries, which
  lack the toolboxes' classes (``ImageClassifier``, ``PackInputs``, ...). We
  drop that one scope (``Config._get_cfg_path``): dicts from ``mmcached::``
  build as when the file is read by path; dicts of ``mmdet::`` /
  ``mmpretrain::`` bases keep theirs.
- **Distributed runs on CPU.** mmengine 0.10.7's ``pytorch``, ``slurm`` and
  ``mpi`` launchers call ``torch.cuda.set_device`` unconditionally, which fails
  without a GPU; without CUDA we run them with that call skipped, and with
  ``gloo`` where the config asks for ``nccl`` (which needs GPUs). A Slurm
  job without ``MASTER_PORT`` gets one derived from its job id rather than
  mmengine's fixed 29500, so two jobs sharing a node do not collide. The
  Runner then wraps the model in ``MMDistributedDataParallel`` with
  ``device_ids=[LOCAL_RANK]``, which torch refuses for a CPU module; for
  CPU modules we drop ``device_ids`` (torch's meaning of "this process's
  CPU"). None of these three has an extension point: each is a minimal,
  idempotent wrapper of the one function concerned.

- **Isolated initialisation.** ``BaseModule.init_weights`` applies a
  module's ``init_cfg`` (``TruncNormal`` on every ``Linear`` ...) to its
  whole sub-tree; modules that set ``init_isolated = True`` (cache layers)
  are skipped and initialise themselves, so adding them does not shift the
  random draws of the rest of the model (:mod:`.init`). mmengine has no
  extension point for it: we wrap the ``initialize`` it calls.
- **FLOPs of SDPA.** mmengine's FLOP analyzer has no handle for
  ``aten::scaled_dot_product_attention`` and counts it as free; we add one
  to its default table (:mod:`.flops`), its extension point.
- **``torch.compile`` with ``paramwise_cfg``.** mmengine's optimizer
  constructors leave param groups as ``ConfigDict`` (they pass through the
  optimizer's config), which dynamo cannot trace in ``optimizer.step``
  (``'UserDefinedDictVariable' object has no attribute 'items'``). We wrap
  ``OptimWrapper.__init__`` (every wrapper type runs it): the optimizer it
  wraps then holds plain dicts, whichever constructor built it.
- **PVT compiles in one graph.** mmdet's PVT gives each position
  embedding its grid as a numpy array (``pretrain_img_size //
  np.prod(...)``), which dynamo takes for a tensor: reading it is a
  data-dependent graph break in every stage (16 in PVT-Tiny's forward), so
  the backbone's loop runs eagerly and its layers compile one by one,
  recompiled per shape; once dynamo makes their shapes dynamic, inductor
  fails on CachedPVT's layers (torch 2.14: ``cannot determine truth value
  of Relational``). We wrap ``AbsolutePositionEmbedding.__init__`` so the
  grid is a tuple of ints: PVT and CachedPVT trace to one graph.
- **Dynamic shapes under inductor.** With a second input size dynamo
  makes shapes dynamic, and inductor (torch 2.14) then sorts the symbolic
  strides of a graph output that is a view without its shape environment,
  so sympy is asked e.g. ``16*(s//4) < 16`` and raises ``cannot determine
  truth value of Relational`` (pytorch/pytorch#185510; fix proposed in
  #185871). The cached PVT's training graph has such an output (the NCHW
  view of mmdet's ``nlc_to_nchw``, saved for backward), so multi-scale
  training failed. We set inductor's ``strict_output_strides``: such
  outputs take their exact eager strides, which needs no sort. The
  compiled training step of the embedded cached PVT took 16.3 against
  16.1 ms with and without it (warm cache, CPU).
- **AMP on CPU.** ``AmpOptimWrapper`` (what ``--amp`` selects) refuses to
  be built without an accelerator. Without one we build it with bfloat16
  autocast on CPU and no loss scaling (bfloat16 has float32's range);
  with one, it is unchanged.
- **Dataloader workers die with their process.** Every loader that the
  Runner builds with workers gets :class:`~.workers.DieWithParent` chained
  to its ``worker_init_fn``, so a run killed by SIGKILL leaves no orphaned
  worker (wrapping ``Runner.build_dataloader``).
- **A checkpoint without cache keys** (uncached weights into a cached
  model) is reported in one line, not key by key (:mod:`.state_keys`,
  wrapping mmengine's ``load_state_dict`` where it is bound by name).
- **ViTs export with any image size.** mmpretrain's ``resize_pos_embed``
  returns the position embedding as is when the size is the one it was
  made for; torch.export records that comparison as a condition on the
  input size, so the exported graph holds only for that size. While
  exporting (and only then) we always resize: to the same size, the
  bicubic resize returns the embedding unchanged.

Only load checkpoints you trust: like mmengine on torch < 2.6, a full
checkpoint is unpickled.
"""
import contextlib
import functools
import os
import sys

import torch
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.fileio import register_backend
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import load_local_checkpoint
from .fileio import AtomicLocalBackend
from .flops import register_sdpa_flop_handle
from .init import isolating_initialize
from .state_keys import quiet_cache_keys
from .workers import attach as attach_worker_exit

_applied = False


@contextlib.contextmanager
def _without_cuda_set_device():
    """``torch.cuda.set_device`` as a no-op, for a launcher run on CPU."""
    set_device = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = set_device


def slurm_master_port(job_id: str) -> int:
    """A port in [20000, 40000) that every task of a Slurm job agrees on."""
    return 20000 + int(job_id) % 20000


def cpu_safe_launcher(launch):
    """Wrap one of mmengine's ``_init_dist_*`` launchers so that it runs
    without CUDA (see the module docstring)."""
    if getattr(launch, '_mmcached_cpu_safe', False):
        return launch

    @functools.wraps(launch)
    def wrapper(backend, *args, **kwargs):
        if launch.__name__ == '_init_dist_slurm' and \
                'MASTER_PORT' not in os.environ and \
                kwargs.get('port') is None and 'SLURM_JOB_ID' in os.environ:
            os.environ['MASTER_PORT'] = str(
                slurm_master_port(os.environ['SLURM_JOB_ID']))
        if torch.cuda.is_available():
            return launch(backend, *args, **kwargs)
        if backend == 'nccl':
            print_log(
                'no CUDA device: using the gloo backend instead of nccl',
                logger='current')
            backend = 'gloo'
        with _without_cuda_set_device():
            return launch(backend, *args, **kwargs)

    wrapper._mmcached_cpu_safe = True
    return wrapper


def cpu_safe_ddp_init(init):
    """Wrap ``MMDistributedDataParallel.__init__``: no ``device_ids`` for a
    module whose parameters are all on CPU (torch refuses them)."""
    if getattr(init, '_mmcached_cpu_safe', False):
        return init

    @functools.wraps(init)
    def __init__(self, module, *args, **kwargs):
        if kwargs.get('device_ids') is not None and all(
                p.device.type == 'cpu' for p in module.parameters()):
            kwargs['device_ids'] = None
        init(self, module, *args, **kwargs)

    __init__._mmcached_cpu_safe = True
    return __init__


def unscoped_mmcached_bases(get_cfg_path):
    """Wrap ``Config._get_cfg_path`` (the function): no scope for
    ``mmcached::`` bases (see the module docstring)."""
    if getattr(get_cfg_path, '_mmcached_unscoped', False):
        return get_cfg_path

    @functools.wraps(get_cfg_path)
    def wrapper(cfg_path, filename):
        path, scope = get_cfg_path(cfg_path, filename)
        return path, None if scope == 'mmcached' else scope

    wrapper._mmcached_unscoped = True
    return wrapper


def plain_dicts(obj):
    """``obj`` with every ``dict`` in it (``ConfigDict`` included) a plain
    dict; tensors and other values kept as they are."""
    if isinstance(obj, dict):
        return {k: plain_dicts(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain_dicts(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain_dicts(v) for v in obj)
    return obj


def plain_param_groups(optimizer) -> None:
    """Turn the param groups of ``optimizer`` into plain dicts, in place."""
    groups = optimizer.param_groups
    groups[:] = [plain_dicts(g) for g in groups]


def with_plain_param_groups(init):
    """Wrap ``OptimWrapper.__init__``: plain-dict param groups (see the
    module docstring)."""
    if getattr(init, '_mmcached_plain', False):
        return init

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        plain_param_groups(self.optimizer)

    __init__._mmcached_plain = True
    return __init__


def has_accelerator() -> bool:
    """A device that mmengine's ``AmpOptimWrapper`` accepts."""
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return is_cuda_available() or is_npu_available() or is_mlu_available() \
        or is_musa_available()


def cpu_capable_amp_init(init):
    """Wrap ``AmpOptimWrapper.__init__``: without an accelerator, bfloat16
    autocast on CPU and no loss scaling (see the module docstring)."""
    if getattr(init, '_mmcached_cpu_amp', False):
        return init

    @functools.wraps(init)
    def __init__(self,
                 loss_scale='dynamic',
                 dtype=None,
                 use_fsdp=False,
                 **kwargs):
        if has_accelerator():
            return init(self, loss_scale, dtype, use_fsdp, **kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype not in (None, torch.bfloat16):
            raise ValueError(
                f'AMP on CPU autocasts to bfloat16 only, got dtype={dtype}: '
                "drop optim_wrapper.dtype or set it to 'bfloat16'")
        from mmengine.optim import OptimWrapper
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        # A disabled scaler: scale, unscale_ and update are no-ops, step
        # steps the optimizer, and a GPU run's scaler state loads (ignored).
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16
        print_log(
            'AMP without a GPU: bfloat16 autocast on CPU, no loss scaling',
            logger='current')

    __init__._mmcached_cpu_amp = True
    return __init__


def int_pos_shape(init):
    """Wrap mmdet's ``AbsolutePositionEmbedding.__init__``: its grid
    (``pos_shape``) as a tuple of ints (see the module docstring)."""
    if getattr(init, '_mmcached_int_shape', False):
        return init

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.pos_shape = tuple(int(s) for s in self.pos_shape)

    __init__._mmcached_int_shape = True
    return __init__


def dying_workers(build_dataloader):
    """Wrap ``Runner.build_dataloader`` (the function): workers die with the
    process (see the module docstring)."""
    if getattr(build_dataloader, '_mmcached_workers', False):
        return build_dataloader

    @functools.wraps(build_dataloader)
    def wrapper(*args, **kwargs):
        loader = build_dataloader(*args, **kwargs)
        attach_worker_exit(loader)
        return loader

    wrapper._mmcached_workers = True
    return wrapper


def exporting() -> bool:
    """Inside ``torch.export`` / ``torch.onnx.export``."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def resize_pos_embed_when_exporting(resize):
    """Wrap mmpretrain's ``resize_pos_embed``: always resize while
    exporting (see the module docstring)."""
    if getattr(resize, '_mmcached_export', False):
        return resize

    @functools.wraps(resize)
    def wrapper(pos_embed,
                src_shape,
                dst_shape,
                mode='bicubic',
                num_extra_tokens=1):
        if not exporting():
            return resize(pos_embed, src_shape, dst_shape, mode,
                          num_extra_tokens)
        extra = pos_embed[:, :num_extra_tokens]
        grid = pos_embed[:, num_extra_tokens:].reshape(1, src_shape[0],
                                                       src_shape[1],
                                                       -1).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(
            grid.float(), size=dst_shape, mode=mode, align_corners=False)
        grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
        return torch.cat((extra, grid), dim=1)

    wrapper._mmcached_export = True
    return wrapper


def apply() -> None:
    """Install the compatibility fixes (idempotent)."""
    global _applied
    if _applied:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # The same dict object is read by the config parser and the registry.
    MODULE2PACKAGE.setdefault('mmcached', 'mmcached')
    Config._get_cfg_path = staticmethod(
        unscoped_mmcached_bases(Config._get_cfg_path))

    import mmengine.dist.utils as dist_utils
    from mmengine.model import MMDistributedDataParallel
    for name in ('_init_dist_pytorch', '_init_dist_slurm', '_init_dist_mpi'):
        setattr(dist_utils, name, cpu_safe_launcher(getattr(dist_utils, name)))
    MMDistributedDataParallel.__init__ = cpu_safe_ddp_init(
        MMDistributedDataParallel.__init__)
    import mmengine.model.base_module as base_module
    base_module.initialize = isolating_initialize(base_module.initialize)
    register_sdpa_flop_handle()

    import mmengine.optim as optim
    import mmengine.runner.runner as runner_module

    # every wrapper type runs it (the CPU AMP path below too)
    optim.OptimWrapper.__init__ = with_plain_param_groups(
        optim.OptimWrapper.__init__)
    optim.AmpOptimWrapper.__init__ = cpu_capable_amp_init(
        optim.AmpOptimWrapper.__init__)
    import mmengine.runner.checkpoint as ckpt_module
    quiet = quiet_cache_keys(ckpt_module.load_state_dict)
    # mmdet's PVT binds it by name; a later import binds the wrapper
    for name in ('mmengine.runner.checkpoint', 'mmengine.runner',
                 'mmdet.models.backbones.pvt'):
        if hasattr(sys.modules.get(name), 'load_state_dict'):
            setattr(sys.modules[name], 'load_state_dict', quiet)
    import mmdet.models.backbones.pvt as pvt_module
    pvt_module.AbsolutePositionEmbedding.__init__ = int_pos_shape(
        pvt_module.AbsolutePositionEmbedding.__init__)
    import torch._inductor.config as inductor_config
    inductor_config.strict_output_strides = True
    import mmpretrain.models.backbones.vision_transformer as vit_module
    import mmpretrain.models.utils as pretrain_utils
    import mmpretrain.models.utils.embed as embed_module
    resize = resize_pos_embed_when_exporting(embed_module.resize_pos_embed)
    # bound by name where the ViTs (ours included) import it
    for module in (embed_module, pretrain_utils, vit_module):
        module.resize_pos_embed = resize
    runner_module.Runner.build_dataloader = staticmethod(
        dying_workers(runner_module.Runner.build_dataloader))
    _applied = True

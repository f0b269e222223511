"""Checks shared by the cached-backbone tests."""
import torch
from mmengine.runner import load_checkpoint, save_checkpoint

from mmcached.models.layers import GatedRecurrentCache, GRCAttention


def caches(model):
    """name -> copy of every cache buffer."""
    return {
        n: m.memory.clone()
        for n, m in model.named_modules()
        if isinstance(m, GatedRecurrentCache)
    }


def num_grc(model):
    return sum(isinstance(m, GRCAttention) for m in model.modules())


def as_tuple(outs):
    return outs if isinstance(outs, tuple) else (outs, )


def check_base_keys(cached, base):
    """Same keys and shapes as the uncached base, plus GRC keys only, and a
    base state dict loads with only GRC keys missing."""
    base_sd, cached_sd = base.state_dict(), cached.state_dict()
    extra = set(cached_sd) - set(base_sd)
    assert set(base_sd) <= set(cached_sd)
    assert extra and all('.attn.grc.' in k for k in extra), sorted(extra)[:5]
    for k, v in base_sd.items():
        assert cached_sd[k].shape == v.shape, k
    missing, unexpected = cached.load_state_dict(base_sd, strict=False)
    assert not unexpected
    assert set(missing) == extra


def check_cache_train_eval(model, x):
    model.train()
    before = caches(model)
    assert before and all(not v.any() for v in before.values())
    model(x)
    after = caches(model)
    assert all(after[k].abs().sum() > 0 for k in after), 'cache not written'
    model.eval()
    with torch.no_grad():
        model(x)
    assert all(torch.equal(after[k], v) for k, v in caches(model).items())
    return after


def check_batch_independent(model, x):
    """x: a batch of >= 2; sample 0 alone gives the same eval output."""
    model.eval()
    with torch.no_grad():
        full = as_tuple(model(x))
        alone = as_tuple(model(x[:1]))
    for f, a in zip(full, alone):
        torch.testing.assert_close(f[:1], a, rtol=1e-4, atol=1e-5)


def check_round_trip(model, new_model, x, tmp_path):
    """save / load_checkpoint(strict) keeps caches and eval outputs."""
    model.train()
    model(x)
    model(x)
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint(model.state_dict(), path)
    load_checkpoint(new_model, path, strict=True)
    old, new = caches(model), caches(new_model)
    assert old.keys() == new.keys()
    assert all(torch.equal(old[k], new[k]) for k in old)
    model.eval()
    new_model.eval()
    with torch.no_grad():
        for a, b in zip(as_tuple(model(x)), as_tuple(new_model(x))):
            torch.testing.assert_close(a, b)
    return path


def check_grads(model, x):
    model.train()
    outs = as_tuple(model(x))
    sum(o.float().mean() for o in outs).backward()
    for n, p in model.named_parameters():
        if '.grc.' in n and p.requires_grad:
            assert p.grad is not None, n


def check_loaded_from(model, src, reset):
    """``model`` was initialised from a checkpoint of ``src``: every weight
    equal; caches zero with ``reset_cache``, else equal too."""
    got, want = caches(model), caches(src)
    assert want, 'no cache to compare'
    for k in want:
        assert (not got[k].any()) if reset else torch.equal(got[k], want[k]), k
    sd = model.state_dict()
    for k, v in src.state_dict().items():
        if not k.endswith('memory'):
            assert torch.equal(sd[k], v), k


def initialised(cls, **cfg):
    """``cls(**cfg)`` seeded (0) and initialised."""
    torch.manual_seed(0)
    model = cls(**cfg)
    model.init_weights()
    return model


def check_cache_use(model, x):
    """:func:`check_cache_train_eval`, :func:`check_batch_independent` and
    :func:`check_grads` on a batch ``x``."""
    check_cache_train_eval(model, x)
    check_batch_independent(model, x)
    check_grads(model, x)


def check_frozen_stage_caches(model, frozen):
    """A training forward leaves the caches of the frozen stage (names
    starting with ``frozen``) as they were and writes the others."""
    before = caches(model)
    model(torch.randn(2, 3, 64, 64))
    after = caches(model)
    for k in before:
        assert torch.equal(before[k], after[k]) == k.startswith(frozen)


def check_state_dict_round_trip(cls, cfg, tmp_path):
    """:func:`check_round_trip` from an :func:`initialised` ``cls(**cfg)``
    into a fresh one."""
    model = initialised(cls, **cfg)
    check_round_trip(model, cls(**cfg), torch.randn(2, 3, 64, 64), tmp_path)


def check_reset_cache_after_pretrained(cls, cfg, reset, tmp_path, prefix=''):
    """A ``cls(**cfg)`` that wrote its caches, saved with ``prefix`` on
    every key, is the Pretrained init of another with ``reset_cache=reset``:
    :func:`check_loaded_from`."""
    src = initialised(cls, **cfg)
    src.train()
    src(torch.randn(2, 3, 64, 64))
    path = str(tmp_path / 'pretrained.pth')
    state_dict = {prefix + k: v for k, v in src.state_dict().items()}
    torch.save(dict(state_dict=state_dict), path)
    model = cls(
        **cfg,
        reset_cache=reset,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    check_loaded_from(model, src, reset)


def build_in_scope(scope, cfg):
    """``cfg`` built by the registry of the toolbox ``scope`` (mmdet or
    mmpretrain), that scope the default one."""
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS.build(cfg)

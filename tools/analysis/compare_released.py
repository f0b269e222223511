"""Check that GRCAttention(mode='released') reproduces the authors' module.

For each case the released ``GRC_Self_Attention`` is built around one of its
host attentions (PVT ``Attention`` with spatial reduction, or the generic
``Attention``, with and without a class token), its weights are randomised
and copied onto ours with :func:`map_released_grc_state_dict`, and both run
on the same fp32 inputs: two training steps (the second one on a non-empty
cache), then eval (and, for hosts without spatial reduction, eval at another
token count). Ours gets the released host's output as ``o_self``.

Printed: max abs difference of outputs, of the cache buffers after each
training step and of the input gradient, and the max difference of the
parameter gradients relative to the largest gradient entry.

Example::

    python tools/analysis/compare_released.py \
        --reference /path/to/GRC-Cache   # repo root, core/ or a bare git dir
"""
import argparse
import sys

import torch
from released_loader import load_released

from mmcached.models.layers.grc.grc_attention import GRCAttention
from mmcached.models.layers.grc.released_mapping import \
    map_released_grc_state_dict

# host: 'pvt' (PVT Attention, takes H, W) or 'generic' (no H, W); other_hw
# (rows may leave it out): a second token grid for eval, for hosts without
# spatial reduction.
_FIELDS = ('name', 'host', 'dim', 'heads', 'hw', 'sr', 'cls', 'qkv_bias',
           'other_hw')
CASES = [
    dict(zip(_FIELDS, row)) for row in [
        ('pvt sr=2', 'pvt', 64, 2, (8, 8), 2, 0, True),
        ('pvt sr=1 no-bias', 'pvt', 32, 1, (6, 6), 1, 0, False),
        ('generic cls=1', 'generic', 48, 4, (7, 7), 1, 1, True, (5, 5)),
        ('generic cls=0', 'generic', 32, 2, (5, 5), 1, 0, True, (4, 4)),
    ]
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--reference',
        required=True,
        help='the released GRC-Cache repo: its root, its core/ folder or a '
        'bare git directory')
    parser.add_argument('--batch-size', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--tol', type=float, default=1e-5)
    return parser.parse_args()


def randomise_(module: torch.nn.Module) -> None:
    """Keep default matrix init; give biases, norms and lam non-trivial
    values so that no term of the equations is silently zero or one."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and not name.endswith('lam'):
                p.add_(torch.randn_like(p) * 0.3)
            elif name.endswith('lam'):
                p.copy_(torch.randn_like(p))


def build(released_mods, case):
    grc_mod, pvt_mod = released_mods
    dim, heads, cls = case['dim'], case['heads'], case['cls']
    kwargs = dict(num_heads=heads, qkv_bias=case['qkv_bias'])
    if case['host'] == 'pvt':
        kwargs['sr_ratio'] = case['sr']
        attn_cls = pvt_mod.Attention
    else:
        attn_cls = grc_mod.Attention
    released = grc_mod.GRC_Self_Attention(
        dim, attention_func=attn_cls, cache_ratio=0.5, cls_dim=cls, **kwargs)
    randomise_(released)
    n_tokens = cls + case['hw'][0] * case['hw'][1]
    ours = GRCAttention(
        dim,
        heads,
        cache_len=case['hw'] if case['host'] == 'pvt' else n_tokens,
        cache_ratio=0.5,
        mode='released',
        sr_ratio=case['sr'],
        qkv_bias=case['qkv_bias'],
        num_extra_tokens=cls)
    missing, unexpected = ours.load_state_dict(
        map_released_grc_state_dict(released.state_dict()), strict=False)
    # The released cache exists only after a forward: ours stays zeros.
    assert missing == ['cache.memory'] and not unexpected, (missing,
                                                            unexpected)
    return released, ours


def run_both(released, ours, case, x, hw, backward=False):
    """Outputs (and gradients) of both modules for the same input."""
    kw = dict(H=hw[0], W=hw[1]) if case['host'] == 'pvt' else {}
    xr = x.clone().requires_grad_(backward)
    xo = x.clone().requires_grad_(backward)
    out_r = released(xr, **kw)
    o_self = released.attn_self_func(xo, kv=xo, **kw)
    out_o = ours(xo, o_self, hw_shape=hw)
    res = dict(out=(out_o - out_r).abs().max().item())
    if backward:
        released.zero_grad()
        ours.zero_grad()
        w = torch.randn_like(out_r)
        (out_r * w).sum().backward()
        (out_o * w).sum().backward()
        res['dx'] = (xo.grad - xr.grad).abs().max().item()
        grads_r = map_released_grc_state_dict({
            n: p.grad
            for n, p in released.named_parameters()
            if not n.startswith('attn_self_func.')
        })
        grads_o = dict(ours.named_parameters())
        # gradients are sums over batch and tokens, of very different sizes
        # per tensor: compare relative to the largest gradient entry
        assert len(grads_r) == len(grads_o)
        diff = max((grads_o[n].grad - g).abs().max().item()
                   for n, g in grads_r.items())
        scale = max(g.abs().max().item() for g in grads_r.values())
        res['dparam'] = diff / scale
    return res


def main():
    args = parse_args()
    mods = load_released(args.reference)
    B = args.batch_size
    print(f'released module: {mods[0].__file__}')
    print('| case | step | out | cache | d input | d params (rel.) |')
    print('|---|---|---|---|---|---|')
    worst = 0.
    for i, case in enumerate(CASES):
        torch.manual_seed(args.seed + i)
        released, ours = build(mods, case)
        hw = case['hw']
        n = case['cls'] + hw[0] * hw[1]
        rows = []
        released.train()
        ours.train()
        for step in (1, 2):
            x = torch.randn(B, n, case['dim'])
            res = run_both(released, ours, case, x, hw, backward=True)
            res['cache'] = (ours.cache.memory -
                            released.gr_cache).abs().max().item()
            rows.append((f'train {step}', res))
        released.eval()
        ours.eval()
        with torch.no_grad():
            x = torch.randn(B, n, case['dim'])
            before = ours.cache.memory.clone()
            res = run_both(released, ours, case, x, hw)
            assert torch.equal(before, ours.cache.memory)
            rows.append(('eval', res))
            if 'other_hw' in case:
                ohw = case['other_hw']
                x = torch.randn(B, case['cls'] + ohw[0] * ohw[1], case['dim'])
                rows.append((f'eval {ohw[0]}x{ohw[1]}',
                             run_both(released, ours, case, x, ohw)))
        for step, res in rows:
            cells = [res.get(k) for k in ('out', 'cache', 'dx', 'dparam')]
            worst = max([worst] + [c for c in cells if c is not None])
            text = ['-' if c is None else f'{c:.2e}' for c in cells]
            print(f"| {case['name']} | {step} | " + ' | '.join(text) + ' |')
    ok = worst <= args.tol
    print(f'max abs diff {worst:.2e} ({"<=" if ok else ">"} {args.tol:g}): '
          f'{"OK" if ok else "MISMATCH"}')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()

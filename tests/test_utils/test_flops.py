"""SDPA is counted by mmengine's FLOP analyzer once mmcached.utils.flops is
imported, exactly like the same attention written with matmuls."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer

from mmcached.utils.flops import (SDPA_OP, get_model_complexity_info,
                                  register_sdpa_flop_handle)


class _Attention(nn.Module):
    """Multi-head attention with different query / key lengths and value
    width, written with SDPA or with explicit matmuls."""

    def __init__(self, dim=32, heads=4, use_sdpa=True):
        super().__init__()
        self.heads, self.use_sdpa = heads, use_sdpa
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mem):
        B, N, C = x.shape
        h = self.heads
        q = self.q(x).view(B, N, h, -1).transpose(1, 2)
        k, v = self.kv(mem).view(B, -1, 2, h, C // h).permute(2, 0, 3, 1, 4)
        if self.use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * (C // h)**-0.5
            o = attn.softmax(-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, C))


def _flops(model, *inputs):
    return FlopAnalyzer(model, inputs).total()


def test_handle_registered():
    from mmengine.analysis.complexity_analysis import \
        _DEFAULT_SUPPORTED_FLOP_OPS
    register_sdpa_flop_handle()  # idempotent
    assert SDPA_OP in _DEFAULT_SUPPORTED_FLOP_OPS


def test_sdpa_counts_like_matmuls():
    torch.manual_seed(0)
    x, mem = torch.randn(2, 10, 32), torch.randn(2, 7, 32)
    sdpa = _Attention(use_sdpa=True).eval()
    plain = _Attention(use_sdpa=False).eval()
    plain.load_state_dict(sdpa.state_dict())
    assert torch.allclose(sdpa(x, mem), plain(x, mem), atol=1e-5)
    f_sdpa, f_plain = _flops(sdpa, x, mem), _flops(plain, x, mem)
    assert f_sdpa == f_plain
    linears = 2 * 10 * 32 * 32 + 2 * 7 * 32 * 64 + 2 * 10 * 32 * 32
    # B * H * Nq * Nk * d for Q K^T and again for A V
    attention = 2 * 2 * (4 * 10 * 7 * 8)
    assert f_sdpa == linears + attention


def test_get_model_complexity_info_counts_grc():
    from mmcached.models.layers.grc.grc_attention import GRCAttention

    class Host(nn.Module):

        def __init__(self):
            super().__init__()
            self.grc = GRCAttention(
                16, 2, cache_len=(4, 4), sr_ratio=2, pos_conv=False)

        def forward(self, x):
            return self.grc(x, x, (4, 4))

    model = Host().eval()
    res = get_model_complexity_info(
        model,
        inputs=(torch.randn(1, 16, 16), ),
        show_table=False,
        show_arch=False)
    # cache attention: 16 queries over 4 reduced cache tokens, 2 heads of 4
    sdpa = 1 * 2 * 16 * 4 * (4 + 4)
    flops = res['flops']
    before = flops
    # without the SDPA handle the same model counts exactly `sdpa` less
    from mmengine.analysis.complexity_analysis import \
        _DEFAULT_SUPPORTED_FLOP_OPS
    handle = _DEFAULT_SUPPORTED_FLOP_OPS.pop(SDPA_OP)
    try:
        without = FlopAnalyzer(model, (torch.randn(1, 16, 16), )).total()
    finally:
        _DEFAULT_SUPPORTED_FLOP_OPS[SDPA_OP] = handle
    assert before - without == sdpa

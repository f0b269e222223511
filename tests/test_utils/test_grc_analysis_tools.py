"""Smoke tests of the GRC analysis tools at toy sizes (the figures they
print are measured by hand; here they only have to run end to end)."""
import os
import os.path as osp
import struct

import pytest

# The released code is never in this repository; tests that need it look
# for a copy named by the environment.
REFERENCE = os.environ.get('MMCACHED_GRC_REFERENCE',
                           '/work/.mirror/annosubmission+GRC-Cache/repo')


def test_benchmark_tiny(run_analysis_tool):
    out = run_analysis_tool('benchmark_grc.py', '--img-size', '32',
                            '--batch-size', '1', '--iters', '1', '--warmup',
                            '0', '--threads', '1')
    assert '| ours released |' in out and '| CachedPVT-Tiny released |' in out
    assert 'training throughput' in out and 'default allocator' in out
    # the FLOP-parity ratio: cached models have more FLOPs, so below 1
    parity = [
        float(line.split('it would be ')[1].split()[0])
        for line in out.splitlines() if 'at equal FLOP rates' in line
    ]
    assert len(parity) == 2 and all(0 < p < 1 for p in parity)
    assert '| ours released |' in out and '| ours paper |' in out


def test_benchmark_keep_heap_reruns_with_glibc_tunables(run_analysis_tool):
    out = run_analysis_tool('benchmark_grc.py', '--img-size', '32',
                            '--batch-size', '1', '--iters', '1', '--warmup',
                            '0', '--threads', '1', '--skip', 'model',
                            '--keep-heap')
    assert 'heap kept (MALLOC_MMAP_THRESHOLD_=' in out
    assert out.count('torch ') == 1  # one header
    assert '| ours released |' in out


def test_complexity_table_tiny(tmp_path, run_analysis_tool):
    plot = str(tmp_path / 'complexity.png')
    out = run_analysis_tool('grc_complexity_table.py', '--models', 'PVT-Tiny',
                            '--img-size', '64', '--plot', plot)
    rows = [line for line in out.splitlines() if line.startswith('| PVT')]
    assert len(rows) == 3 and 'error' not in out
    # the plot: a PNG of the size the tool sets (7.5 x 5.5 in at 100 dpi)
    assert out.rstrip().endswith(plot)
    with open(plot, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR'
    assert struct.unpack('>II', head[16:24]) == (750, 550)


@pytest.mark.skipif(
    not osp.exists(REFERENCE), reason='released GRC code not available')
def test_compare_released(run_analysis_tool):
    out = run_analysis_tool('compare_released.py', '--reference', REFERENCE)
    assert out.rstrip().endswith('OK')


def test_benchmark_cache_sync_tiny(run_analysis_tool):
    out = run_analysis_tool('benchmark_cache_sync.py', '--backbone', 'vit',
                            '--steps', '1', '--warmup', '0', '--img-size',
                            '32')
    rows = {
        line.split('|')[1].strip(): line.split('|')[2].strip()
        for line in out.splitlines()
        if line.startswith('| per layer') or line.startswith('| bucketed')
    }
    assert rows == {'per layer': '12', 'bucketed': '1'}  # DeiT-Tiny: 12
    assert 'to the per-layer way: True' in out

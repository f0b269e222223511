"""tools/deployment/pytorch2onnx.py: the exported ONNX file, run by
onnxruntime, matches PyTorch at the export size and at another size and
batch where the model leaves them dynamic: GRC (its cache-length resize
in the graph) and Memory Caching (its segment layout in the graph)."""
import os.path as osp
import subprocess
import sys

import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _export(tmp_path, config, *args):
    r = subprocess.run([
        sys.executable, 'tools/deployment/pytorch2onnx.py', config, '--out',
        str(tmp_path / 'model.onnx'), *args
    ],
                       cwd=REPO,
                       capture_output=True,
                       text=True,
                       timeout=900)
    return r.returncode, r.stdout


def _diffs(out):
    lines = [ln for ln in out.splitlines() if 'max |onnx - torch|' in ln]
    return {
        ln.split(':')[0]:
        max(float(d) for d in ln.split('output:')[1].split(','))
        for ln in lines
    }


@pytest.mark.slow
def test_grc_pvt_classifier_any_batch_and_size(tmp_path):
    """The embedded cached PVT (GRC), exported at 2x64x64: batch and size
    are dynamic, onnxruntime matches at 3x64x64 and 2x128x192 (the cache
    length resize is in the graph)."""
    rc, out = _export(tmp_path,
                      'configs/embedded/cached-pvt-mini_1xb64-40e_digits.py',
                      '--shape', '64', '64')
    assert rc == 0, out
    assert 'batch: dynamic' in out and 'height and width: dynamic' in out
    diffs = _diffs(out)
    assert set(diffs) == {
        '(2, 3, 64, 64)', '(3, 3, 64, 64)', '(2, 3, 128, 192)'
    }
    assert max(diffs.values()) < 1e-4


@pytest.mark.slow
def test_grc_vit_any_size(tmp_path):
    """The embedded cached ViT: its position embedding is resized in the
    graph, so other sizes run too."""
    rc, out = _export(
        tmp_path, 'configs/embedded/cached-vit-mini-p8_1xb64-40e_digits.py')
    assert rc == 0, out
    assert 'height and width: dynamic' in out
    assert '(2, 3, 48, 64)' in _diffs(out)


@pytest.mark.slow
def test_mc_any_batch_and_size(tmp_path):
    """The embedded Memory Caching ViT: its segment layout is built in the
    graph (the grid form), so batch, height and width stay dynamic and
    onnxruntime matches at another batch and at 48x64; and at 144x144,
    where each of the 4 segments (82 tokens) spans two blocks of the grid
    (64 tokens) where the export's (5 tokens) had one."""
    rc, out = _export(tmp_path,
                      'configs/embedded/mc-vit-mini-p8_1xb64-40e_digits.py')
    assert rc == 0, out
    assert 'batch: dynamic' in out and 'height and width: dynamic' in out
    diffs = _diffs(out)
    assert set(diffs) == {'(2, 3, 32, 32)', '(3, 3, 32, 32)', '(2, 3, 48, 64)'}
    assert max(diffs.values()) < 1e-4
    rc, out = _export(tmp_path,
                      'configs/embedded/mc-vit-mini-p8_1xb64-40e_digits.py',
                      '--verify-shape', '144', '144')
    assert rc == 0, out
    assert max(_diffs(out).values()) < 1e-4

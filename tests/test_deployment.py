"""tools/deployment/pytorch2onnx.py: the exported ONNX file, run by
onnxruntime, matches PyTorch at the export size and at another size and
batch where the model leaves them dynamic (GRC; Memory Caching: the
batch), and the tool says which axes the model fixes (Memory Caching's
token count)."""
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
def test_mc_fixes_the_token_count(tmp_path):
    rc, out = _export(tmp_path,
                      'configs/embedded/mc-vit-mini-p8_1xb64-40e_digits.py')
    assert rc == 0, out
    assert 'batch: dynamic' in out
    assert 'height and width: static (the model fixes it' in out
    assert set(_diffs(out)) == {'(2, 3, 32, 32)', '(3, 3, 32, 32)'}

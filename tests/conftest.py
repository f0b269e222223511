import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    # Nothing may reach the network at test time (no weights, no data).
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TORCH_HOME',
                       os.environ.get('TORCH_HOME', '/nonexistent-torch-home'))


@pytest.fixture(scope='session')
def run_python():
    """``run(*args, timeout=900)``: this Python with ARGS (a script path
    relative to the repository root first) run from the repository root;
    its CompletedProcess (text). A failing run fails the test with the tail
    of the run's output."""

    def run(*args, timeout=900):
        proc = subprocess.run([sys.executable, *args],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc

    return run


@pytest.fixture
def run_analysis_tool(run_python):
    """``run(script, *args)``: tools/analysis/SCRIPT run with this Python
    from the repository root; its stdout. A failing run fails the test with
    the tool's output."""

    def run(script, *args, timeout=300):
        return run_python(
            osp.join('tools', 'analysis', script), *args,
            timeout=timeout).stdout

    return run


@pytest.fixture(scope='session')
def load_tool():
    """``load(path)``: the script at PATH (relative to the repository root)
    as a module, without running its ``__main__`` part. Its folder is on
    ``sys.path`` while it loads, as when Python runs it, so that it imports
    the helper modules beside it."""

    def load(path):
        path = osp.join(REPO, path)
        name = osp.splitext(osp.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, osp.dirname(path))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(osp.dirname(path))
        return module

    return load


@pytest.fixture(scope='session')
def assert_same_caches_and_grads():
    """``check(expected, model)``: the two models' GRC cache buffers and
    parameter gradients are equal (after the same training steps)."""
    import torch

    def check(expected, model):
        for (name, a), b in zip(expected.named_buffers(), model.buffers()):
            if 'cache.memory' in name:
                torch.testing.assert_close(a, b, msg=name)
        for (name, p), q in zip(expected.named_parameters(),
                                model.parameters()):
            if p.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, msg=name)

    return check

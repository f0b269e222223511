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


@pytest.fixture
def run_analysis_tool():
    """``run(script, *args)``: tools/analysis/SCRIPT run with this Python
    from the repository root; its stdout. A failing run fails the test with
    the tool's output."""

    def run(script, *args, timeout=300):
        tool = osp.join(REPO, 'tools', 'analysis', script)
        proc = subprocess.run([sys.executable, tool, *args],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              timeout=timeout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    return run

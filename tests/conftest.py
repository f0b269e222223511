import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def repo_root():
    return REPO


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    # Nothing may reach the network at test time (no weights, no data).
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TORCH_HOME', os.environ.get('TORCH_HOME', '/nonexistent-torch-home'))

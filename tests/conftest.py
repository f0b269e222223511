import os

import pytest


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    # Nothing may reach the network at test time (no weights, no data).
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TORCH_HOME',
                       os.environ.get('TORCH_HOME', '/nonexistent-torch-home'))

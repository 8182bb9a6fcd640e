"""Shared test set-up: offline hub, a private cache, tiny tokenizers built here (never downloaded), markers."""

import atexit
import os
import shutil
import tempfile

# Before anything imports huggingface_hub: the tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# packed-dataset cache of this test session (subprocesses inherit it): never the user's own cache
os.environ["HFMICRO_CACHE"] = tempfile.mkdtemp(prefix="hfmicro-test-cache-")
atexit.register(shutil.rmtree, os.environ["HFMICRO_CACHE"], ignore_errors=True)

import pytest  # noqa: E402

from helpers import build_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def bert_tokenizer():
    return build_tokenizer("bert")


@pytest.fixture(scope="session")
def gpt_tokenizer():
    return build_tokenizer("gpt")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A packed-dataset cache of this test's own (modules that need one: pytestmark = usefixtures)."""
    monkeypatch.setenv("HFMICRO_CACHE", str(tmp_path / "cache"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    # the inner loop, `pytest -m "not slow"`, leaves these out: what trains a model or fuzzes
    config.addinivalue_line("markers", "slow: trains a model (in this process or launched) or fuzzes an input")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

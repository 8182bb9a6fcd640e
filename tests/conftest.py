"""Shared test set-up: offline hub, tiny tokenizers built here (never downloaded)."""

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

def sample_texts(n_chars: int = 200_000) -> list[str]:
    """Real English prose that ships with Python (the pydoc topic help), as paragraphs."""
    from pydoc_data.topics import topics

    paragraphs, total = [], 0
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            para = " ".join(para.split())
            if len(para) > 40:
                paragraphs.append(para)
                total += len(para)
        if total >= n_chars:
            break
    return paragraphs


def build_tokenizer(kind: str, vocab_size: int = 400):
    """A small byte-level BPE tokenizer ('bert' or 'gpt'), made by hfmicro.bpe as users make theirs."""
    import warnings

    from transformers import AutoTokenizer

    from hfmicro.bpe import train_bpe

    folder = os.path.join(tempfile.mkdtemp(prefix="hfmicro-test-tokenizer-"), kind)
    atexit.register(shutil.rmtree, os.path.dirname(folder), ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a vocabulary below the supported range, on purpose
        train_bpe(sample_texts(), vocab_size=vocab_size, model_type=kind, output_dir=folder)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def bert_tokenizer():
    return build_tokenizer("bert")


@pytest.fixture(scope="session")
def gpt_tokenizer():
    return build_tokenizer("gpt")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "slow: end-to-end runs that take tens of seconds")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

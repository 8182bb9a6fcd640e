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

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
    """A small byte-level BPE tokenizer ('bert' or 'gpt' special tokens), as a transformers fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = BERT_SPECIALS if kind == "bert" else ["<|endoftext|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_texts(), trainer=trainer)
    if kind == "bert":
        tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]",
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>"
    )


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

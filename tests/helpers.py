"""What several test modules share: tiny models and batches, real prose and small tokenizers made from it,
launching a command, and comparisons whose tolerance follows floating-point rounding. The fixtures built on
these live in conftest.py."""

import atexit
import os
import shutil
import subprocess
import tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a command's environment: offline, and the installed hfmicro rather than a PYTHONPATH's
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
VOCAB = 400  # the test tokenizers' size
# MicroGPT with what the GPT speedruns found: rotary, QK-norm, ReLU², zero-init projections, untied head
SPEEDRUN = {"position_embedding_type": "rotary", "qk_norm": True, "hidden_act": "relu2", "zero_init_residual": True,
            "tie_word_embeddings": False}


def tiny_config(family: str, **overrides):
    from hfmicro import MicroBertConfig, MicroGPTConfig

    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    if family == "microbert":
        return MicroBertConfig(**(common | overrides))
    return MicroGPTConfig(**(common | dict(bos_token_id=0, eos_token_id=0, pad_token_id=1) | overrides))


def tiny_model(family: str, seed: int = 0, **overrides):
    from hfmicro import MicroBertForMaskedLM, MicroGPTForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(family, **overrides)
    cls = MicroBertForMaskedLM if family == "microbert" else MicroGPTForCausalLM
    return cls(config).eval()


def random_batch(batch=3, seq=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, VOCAB, (batch, seq), generator=g)


def mlm_labels(input_ids, rate=0.3, seed=2):
    g = torch.Generator().manual_seed(seed)
    labels = input_ids.clone()
    labels[torch.rand(input_ids.shape, generator=g) > rate] = -100
    labels[0, 0] = input_ids[0, 0]  # at least one scored token
    return labels


def assert_close_to_rounding(actual: torch.Tensor, expected: torch.Tensor, ulps: int = 64, msg=None) -> None:
    """`actual` equals `expected` up to the rounding of computing the same value in another order (chunks,
    fused kernels, another CPU's matmul kernels): `ulps` units of the dtype's rounding (its machine epsilon),
    relative to each element and to the largest magnitude in `expected`. A fixed absolute tolerance is both
    too tight for large values (a gradient of ~0.2 came out 1.4e-7 off on one CPU, against atol=1e-7) and
    too loose for small ones; a real bug is off by a share of the value itself, far beyond this."""
    eps = torch.finfo(expected.dtype).eps
    scale = expected.detach().abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale, msg=msg)


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


def build_tokenizer(kind: str, vocab_size: int = VOCAB):
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


def run_command(cmd: list[str], cwd: str = ROOT, expect: int = 0, timeout: int = 300) -> str:
    """Run `cmd` as a user would (ENV); assert its exit code; return its output, stdout then stderr."""
    result = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == expect, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr

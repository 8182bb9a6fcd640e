"""Every preset row builds, and its parameter count is exact."""

import subprocess
import sys

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

from hfmicro.presets import PRESETS, count_preset, preset_config


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_count_is_exact(name):
    preset = PRESETS[name]
    counts = count_preset(name)
    assert counts["total"] == preset.params
    assert counts["active"] == (preset.active or preset.params)
    config = preset_config(name)
    assert config.model_type == preset.family
    assert config.max_position_embeddings == preset.max_position_embeddings


def test_stock_sized_rows_match_stock_models():
    with torch.device("meta"):
        assert BertForMaskedLM(BertConfig()).num_parameters() == PRESETS["microbert-base"].params
        assert GPT2LMHeadModel(GPT2Config()).num_parameters() == PRESETS["microgpt-124m"].params == 124_439_808


def test_seed_sizes_are_all_covered():
    dims = {(p.family, p.num_hidden_layers, p.num_attention_heads, p.hidden_size) for p in PRESETS.values()}
    for wanted in [(2, 2, 4), (2, 2, 16), (4, 4, 8), (6, 8, 16), (8, 8, 256), (3, 8, 512)]:
        assert ("microbert", *wanted) in dims
    assert ("microgpt", 8, 8, 512) in dims


def test_overrides_and_unknown_preset():
    assert preset_config("microbert-toy", vocab_size=123, pre_norm=True).vocab_size == 123
    with pytest.raises(ValueError, match="microbert-toy"):
        preset_config("microbert-tiny")


def test_configs_command_lists_every_preset():
    out = subprocess.run([sys.executable, "-m", "hfmicro.cli", "configs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name, preset in PRESETS.items():
        assert name in out.stdout and f"{preset.params:,}" in out.stdout
    assert "46,064,128" in out.stdout  # active parameters of the MoE row


def test_configs_command_shows_weight_memory_per_precision():
    """The users' table: parameters and the memory their weights take (fp32 4 bytes, bf16 2 bytes each)."""
    out = subprocess.run([sys.executable, "-m", "hfmicro.cli", "configs"], capture_output=True, text=True, timeout=120)
    header, _, *rows = out.stdout.splitlines()
    assert "fp32" in header and "bf16" in header
    gpt2 = next(row for row in rows if row.startswith("microgpt-124m "))
    assert "497.8 MB" in gpt2 and "248.9 MB" in gpt2  # 124,439,808 x 4 and x 2 bytes
    toy = next(row for row in rows if row.startswith("microbert-toy "))
    assert "164.2 kB" in toy and "82.1 kB" in toy  # 41,044 parameters


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_preset_names_no_token_id_outside_its_vocabulary(name):
    """GPT-2's bos/eos id 50256 does not exist in an 8k vocabulary: transformers warns about it at every
    build. A preset leaves out the ids its vocabulary cannot hold (a recipe sets its tokenizer's)."""
    config = preset_config(name)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, key)
        assert value is None or 0 <= value < config.vocab_size, (key, value)
    assert preset_config(name, vocab_size=60000, eos_token_id=50256).eos_token_id == 50256  # given: kept

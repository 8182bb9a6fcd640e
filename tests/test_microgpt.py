"""MicroGPT specifics: causality, KV-cache generation, sampling, mixture of experts, conversion to GPT-2."""

import pytest
import torch
from transformers import GenerationConfig

from hfmicro import count_parameters, to_stock
from helpers import SPEEDRUN, VOCAB, assert_close_to_rounding, random_batch, tiny_model


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_strictly_causal(impl):
    model = tiny_model("microgpt")
    model.set_attn_implementation(impl)
    x = random_batch(batch=2, seq=12)
    y = x.clone()
    y[:, 7:] = torch.randint(5, VOCAB, (2, 5))
    with torch.no_grad():
        a, b = model(x).logits, model(y).logits
    assert_close_to_rounding(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def greedy(model, input_ids, **kwargs):
    config = GenerationConfig(do_sample=False, max_new_tokens=10, pad_token_id=1, eos_token_id=None)
    return model.generate(input_ids, generation_config=config, **kwargs)


@pytest.mark.parametrize("name", ["past_key_values", "cache"])
def test_the_kv_cache_is_taken_under_either_name(name):
    # transformers up to 5.23 hands the cache to forward as `past_key_values`, 5.24 on as `cache`: a checkpoint's
    # modeling file meets both, or generation silently restarts at position 0 every step
    from transformers import DynamicCache

    model = tiny_model("microgpt")
    ids = random_batch(batch=2, seq=8)
    with torch.no_grad():
        full = model(ids).logits[:, -1]
        cache = DynamicCache(config=model.config)
        model(ids[:, :-1], use_cache=True, **{name: cache})
        assert cache.get_seq_length() == 7
        step = model(ids[:, -1:], use_cache=True, **{name: cache}).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("variant", [{}, SPEEDRUN], ids=["default", "speedrun"])
def test_greedy_generation_cached_equals_uncached(impl, variant):
    model = tiny_model("microgpt", **variant)
    model.set_attn_implementation(impl)
    prompt = random_batch(batch=2, seq=6)
    cached = greedy(model, prompt, use_cache=True)
    uncached = greedy(model, prompt, use_cache=False)
    assert cached.shape == (2, 16)
    assert torch.equal(cached, uncached)
    # and each step really is the argmax of a full forward pass
    with torch.no_grad():
        assert torch.equal(model(cached[:, :-1]).logits[:, 5:].argmax(-1), cached[:, 6:])


def test_left_padded_batched_generation_equals_unpadded():
    model = tiny_model("microgpt")
    long, short = random_batch(batch=1, seq=8, seed=5)[0], random_batch(batch=1, seq=5, seed=6)[0]
    batch = torch.stack([long, torch.cat([torch.full((3,), 1), short])])
    mask = torch.ones_like(batch)
    mask[1, :3] = 0
    together = greedy(model, batch, attention_mask=mask)
    alone_long = greedy(model, long[None])
    alone_short = greedy(model, short[None])
    assert torch.equal(together[0], alone_long[0])
    assert torch.equal(together[1, 3:], alone_short[0])


def test_sampling_options():
    model = tiny_model("microgpt")
    prompt = random_batch(batch=1, seq=4)

    def sample(seed, **kwargs):
        torch.manual_seed(seed)
        config = GenerationConfig(do_sample=True, max_new_tokens=12, pad_token_id=1, eos_token_id=None, **kwargs)
        return model.generate(prompt, generation_config=config)[0, 4:]

    # reproducible for a seed, different across seeds at high temperature
    assert torch.equal(sample(0, temperature=1.5), sample(0, temperature=1.5))
    assert not torch.equal(sample(0, temperature=1.5), sample(1, temperature=1.5))
    # top_k=1 and a tiny top_p both reduce sampling to greedy
    greedy_tokens = greedy(model, prompt, max_new_tokens=12)[0, 4:]
    assert torch.equal(sample(2, top_k=1), greedy_tokens)
    assert torch.equal(sample(3, top_p=1e-6, top_k=0), greedy_tokens)
    # a strong repetition penalty avoids repeating tokens that greedy decoding repeats
    config = GenerationConfig(do_sample=False, max_new_tokens=12, pad_token_id=1, eos_token_id=None,
                              repetition_penalty=100.0)
    penalised = model.generate(prompt, generation_config=config)[0]
    assert len(set(penalised.tolist())) == len(penalised)


def test_generation_stops_at_eos_and_respects_context_length():
    model = tiny_model("microgpt", max_position_embeddings=16)
    prompt = random_batch(batch=1, seq=4)
    first = greedy(model, prompt, max_new_tokens=1)[0, -1].item()
    config = GenerationConfig(do_sample=False, max_new_tokens=10, pad_token_id=1, eos_token_id=first)
    out = model.generate(prompt, generation_config=config)
    assert out.shape[1] == 5 and out[0, -1] == first
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(random_batch(batch=1, seq=17))


def test_moe_parameters_aux_loss_and_routing():
    dense = tiny_model("microgpt")
    moe = tiny_model("microgpt", num_experts=4, num_experts_per_tok=2, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0).train()
    counts = count_parameters(moe)
    expert = sum(p.numel() for p in moe.transformer.h[0].mlp.experts[0].parameters())
    router = moe.transformer.h[0].mlp.gate.weight.numel()
    layers = moe.config.num_hidden_layers
    assert counts["total"] == dense.num_parameters() + layers * (3 * expert + router)
    assert counts["active"] == counts["total"] - layers * 2 * expert
    assert count_parameters(dense)["active"] == dense.num_parameters()

    x = random_batch(batch=4, seq=16)
    out = moe(x, labels=x)
    assert len(out.router_logits) == layers and out.router_logits[0].shape == (64, 4)
    assert 1.0 <= out.aux_loss.item() < 4.0  # 1 = perfectly balanced, E = everything on one expert
    with torch.no_grad():  # training keeps no logits (LinearCrossEntropy): the same forward, without labels
        logits = moe(x).logits  # (B, T, V)
    without_aux = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), x[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, without_aux + moe.config.router_aux_loss_coef * out.aux_loss)
    out.aux_loss.backward()
    assert moe.transformer.h[0].mlp.gate.weight.grad.abs().sum() > 0


def test_moe_balancing_loss_is_one_when_uniform():
    from hfmicro.models.microgpt.modeling_microgpt import load_balancing_loss

    logits = torch.zeros(64, 4)
    logits[torch.arange(64), torch.arange(64) % 4] = 1.0  # each expert top-1 for a quarter of tokens
    assert abs(load_balancing_loss((logits,), 4, 1).item() - 1.0) < 1e-6
    collapsed = torch.zeros(64, 4)
    collapsed[:, 0] = 10.0
    assert load_balancing_loss((collapsed,), 4, 1).item() > 3.5


def test_to_stock_gpt2_gives_same_logits_and_generation():
    model = tiny_model("microgpt")
    stock = to_stock(model)
    assert type(stock).__name__ == "GPT2LMHeadModel"
    assert stock.num_parameters() == model.num_parameters()
    x = random_batch()
    with torch.no_grad():
        assert (model(x).logits - stock(x).logits).abs().max() < 1e-5
    prompt = random_batch(batch=1, seq=5)
    assert torch.equal(greedy(model, prompt), greedy(stock, prompt))


@pytest.mark.parametrize("option,value", [("use_bias", False), ("mlp_type", "glu"), ("num_experts", 4),
                                          ("position_embedding_type", "rotary"), ("qk_norm", True),
                                          ("tie_word_embeddings", False)])
def test_to_stock_gpt2_refuses_incompatible_options(option, value):
    with pytest.raises(ValueError, match=option):
        to_stock(tiny_model("microgpt", **{option: value}))


def test_gpt2s_gelu_runs_as_the_fused_kernel_with_the_same_loss():
    """Speed lever: hidden_act gelu_new (GPT-2's) is computed by PyTorch's fused tanh-GELU; loss and
    gradients match the eight-op formula GPT-2 uses."""
    from transformers.activations import ACT2FN

    from hfmicro.models import MicroGPTConfig, MicroGPTForCausalLM

    config = MicroGPTConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=32, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0)
    assert config.hidden_act == "gelu_new"
    torch.manual_seed(0)
    model = MicroGPTForCausalLM(config)
    x = torch.randint(0, 300, (4, 32))
    fused = model(x, labels=x).loss
    fused.backward()
    fused_grad = model.transformer.h[0].mlp.c_fc.weight.grad.clone()
    model.zero_grad()
    for block in model.transformer.h:
        block.mlp.act = ACT2FN["gelu_new"]  # GPT2MLP's own activation
    reference = model(x, labels=x).loss
    reference.backward()
    assert_close_to_rounding(fused, reference)
    assert_close_to_rounding(fused_grad, model.transformer.h[0].mlp.c_fc.weight.grad)


def test_speedrun_options_build_what_they_say():
    model = tiny_model("microgpt", **SPEEDRUN)
    assert model.transformer.wpe is None  # rotary: no learned positions
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr()  # untied
    for block in model.transformer.h:  # zero-initialised output projections: each block starts as the identity
        assert not block.attn.c_proj.weight.any() and not block.mlp.c_proj.weight.any()
    assert type(model.transformer.h[0].mlp.act).__name__ == "ReLUSquaredActivation"
    default = tiny_model("microgpt")
    assert count_parameters(model)["total"] == count_parameters(default)["total"] - 32 * 64 + VOCAB * 32


def test_unpadded_blocks_take_sdpas_is_causal_path_with_the_same_loss():
    """Speed lever: packed training blocks have no padding, so SDPA gets no mask tensor and runs its
    is_causal kernel; the loss equals eager attention's with the causal mask built out."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    model = tiny_model("microgpt")
    x = random_batch(batch=2, seq=12)
    seen = []
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def recording(module, query, key, value, attention_mask, **kwargs):
        seen.append(attention_mask)
        return sdpa(module, query, key, value, attention_mask, **kwargs)

    ALL_ATTENTION_FUNCTIONS["sdpa"] = recording
    try:
        model.set_attn_implementation("sdpa")
        with torch.no_grad():
            fast = model(x, attention_mask=torch.ones_like(x), labels=x).loss
            padded = torch.ones_like(x)
            padded[1, :3] = 0
            model(x, attention_mask=padded)
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa
    n = model.config.num_hidden_layers
    assert seen[:n] == [None] * n  # unpadded: no mask materialised
    assert all(m is not None for m in seen[n:])  # padded: a mask, as it must be
    model.set_attn_implementation("eager")
    with torch.no_grad():
        reference = model(x, labels=x).loss
    assert_close_to_rounding(fast, reference)


@pytest.mark.parametrize("variant", [{}, {"tie_word_embeddings": False}])
@pytest.mark.parametrize("num_items_in_batch", [None, 29])
def test_training_keeps_no_logits_and_gives_the_same_loss_and_gradients(monkeypatch, variant, num_items_in_batch):
    """Memory lever: a training forward with labels computes the loss a few rows at a time and keeps no
    (tokens x vocabulary) tensor for backward (at GPT-2's 50k vocabulary, 16 x 1024 tokens: 3.3 GB of fp32
    logits, and as much again for their log-softmax); loss and every gradient equal those of the full
    logits through transformers' ForCausalLMLoss."""
    from hfmicro.models.microgpt import modeling_microgpt

    monkeypatch.setattr(modeling_microgpt, "LOSS_CHUNK_ELEMENTS", 5 * VOCAB, raising=False)  # 5 rows a chunk
    model = tiny_model("microgpt", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **variant).train()
    x = random_batch(batch=3, seq=12)
    labels = x.clone()
    labels[0, :4] = -100
    labels[2, 7] = -100
    kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": torch.tensor(num_items_in_batch)}

    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        out = model(x, labels=labels, **kwargs)
    assert out.logits is None
    assert not [s for s in saved if len(s) and s[-1] == VOCAB and s.numel() >= x.numel() * VOCAB], saved
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}

    model.zero_grad()
    logits = model.lm_head(model.transformer(x).last_hidden_state)  # (B, T, V): the usual way
    reference = model.loss_function(logits, labels, vocab_size=VOCAB, **kwargs)
    reference.backward()
    assert_close_to_rounding(out.loss, reference)
    for name, p in model.named_parameters():
        assert_close_to_rounding(grads[name], p.grad, msg=name)
    with torch.no_grad():  # evaluation still returns the logits, and the same loss
        assert_close_to_rounding(model(x, labels=labels, **kwargs).loss, reference.detach())

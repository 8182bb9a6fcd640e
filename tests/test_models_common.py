"""The checklist transformers applies to its own models, run on both families at tiny sizes."""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

import hfmicro
from hfmicro import MicroBertConfig, MicroBertForMaskedLM, MicroGPTConfig, MicroGPTForCausalLM
from hfmicro.models import enable_activation_checkpointing
from helpers import SPEEDRUN, VOCAB, mlm_labels, random_batch, tiny_config, tiny_model

def labels_for(family, input_ids):
    return mlm_labels(input_ids) if family == "microbert" else input_ids.clone()


FAMILIES = ["microbert", "microgpt"]
VARIANTS = [  # the stock-compatible defaults and the opt-in training options
    {},
    {"use_bias": False, "mlp_type": "glu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
]
UNTIED = {"tie_word_embeddings": False}  # an output head of its own


def ids(variant):
    return "default" if not variant else "untied" if variant == UNTIED else "options"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", [*VARIANTS, UNTIED], ids=ids)
def test_save_load_round_trip(tmp_path, family, variant):
    if family == "microbert" and variant:
        variant = variant | {"pre_norm": True, "type_vocab_size": 0, "position_embedding_type": "rotary"}
    model = tiny_model(family, **variant)
    x = random_batch()
    with torch.no_grad():
        before = model(x).logits
    model.save_pretrained(tmp_path)

    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", f"configuration_{family}.py", f"modeling_{family}.py"} <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == family
    assert "AutoConfig" in config["auto_map"]

    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        saved = set(f.keys())
    tied_target = "decoder.weight" if family == "microbert" else "lm_head.weight"
    tied = model.config.tie_word_embeddings
    assert (tied_target in saved) != tied  # tied weights are stored once; an untied head is stored
    expected = {n for n, _ in model.named_parameters()}  # named_parameters() lists shared tensors once
    assert saved == expected

    auto = AutoModelForMaskedLM if family == "microbert" else AutoModelForCausalLM
    loaded, info = auto.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is type(model)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for (name, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(p, q), name  # loading must not re-initialise anything
    out_emb, in_emb = loaded.get_output_embeddings().weight, loaded.get_input_embeddings().weight
    assert (out_emb.data_ptr() == in_emb.data_ptr()) == tied  # still tied (or not) after loading
    with torch.no_grad():
        after = loaded.eval()(x).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_initialisation(family):
    model = tiny_model(family, num_hidden_layers=4, hidden_size=64, intermediate_size=256)
    std = model.config.initializer_range
    layers = 4
    for name, p in model.named_parameters():
        if "norm" in name or name.split(".")[-2].startswith("ln_"):
            expected = torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)
            assert torch.equal(p, expected), name
        elif name.endswith("bias"):
            assert torch.count_nonzero(p) == 0, name
        elif family == "microgpt" and name.endswith("c_proj.weight"):
            # GPT-2: residual projections scaled by 1/sqrt(2 * layers)
            assert abs(p.std().item() - std / (2 * layers) ** 0.5) < 0.25 * std / (2 * layers) ** 0.5, name
        else:
            assert abs(p.std().item() - std) < 0.15 * std, name
    if family == "microbert":
        assert torch.count_nonzero(model.model.embeddings.tok_embeddings.weight[0]) == 0  # padding row


@pytest.mark.parametrize("family", FAMILIES)
def test_determinism_and_shapes(family):
    a, b = tiny_model(family, seed=3), tiny_model(family, seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    x = random_batch(batch=2, seq=10)
    a.set_attn_implementation("eager")
    with torch.no_grad():
        out1 = a(x, output_hidden_states=True, output_attentions=True)
        out2 = a(x, output_hidden_states=True, output_attentions=True)
    assert torch.equal(out1.logits, out2.logits)
    assert out1.logits.shape == (2, 10, VOCAB)
    assert len(out1.hidden_states) == a.config.num_hidden_layers + 1
    assert all(h.shape == (2, 10, 32) for h in out1.hidden_states)
    assert len(out1.attentions) == a.config.num_hidden_layers
    assert all(w.shape == (2, 4, 10, 10) for w in out1.attentions)
    torch.testing.assert_close(out1.attentions[0].sum(-1), torch.ones(2, 4, 10))
    base = AutoModel.from_config(a.config)
    assert type(base).__name__ == ("MicroBertModel" if family == "microbert" else "MicroGPTModel")


# MicroBERT with every option stock BERT lacks
BERT_OPTIONS = {"pre_norm": True, "position_embedding_type": "rotary", "qk_norm": True, "hidden_act": "relu2",
                "use_bias": False, "decoder_bias": True, "residual_init": "scaled", "mlp_type": "glu",
                "value_residual": True}


@pytest.mark.parametrize("family,variant", [("microbert", {}), ("microgpt", {}),
                                            ("microbert", {"position_embedding_type": "rotary"}),
                                            ("microgpt", SPEEDRUN), ("microbert", BERT_OPTIONS)],
                         ids=["microbert", "microgpt", "microbert-rotary", "microgpt-speedrun", "microbert-options"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_batching_with_padding_equals_single(family, variant, impl):
    model = tiny_model(family, **variant)
    model.set_attn_implementation(impl)
    x = random_batch(batch=2, seq=12)
    short = 7
    mask = torch.ones_like(x)
    batch = x.clone()
    if family == "microbert":  # right padding
        mask[1, short:] = 0
        batch[1, short:] = 0
        with torch.no_grad():
            padded = model(batch, attention_mask=mask).logits[1, :short]
            alone = model(x[1:, :short]).logits[0]
    else:  # left padding, as for batched generation; positions count real tokens only
        mask[1, : 12 - short] = 0
        batch[1, : 12 - short] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            padded = model(batch, attention_mask=mask, position_ids=position_ids).logits[1, 12 - short :]
            alone = model(x[1:, 12 - short :]).logits[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family,variant", [("microbert", {}), ("microgpt", {}),
                                            ("microbert", {"position_embedding_type": "rotary"}),
                                            ("microgpt", SPEEDRUN), ("microbert", BERT_OPTIONS)],
                         ids=["microbert", "microgpt", "microbert-rotary", "microgpt-speedrun", "microbert-options"])
def test_eager_matches_sdpa(family, variant):
    model = tiny_model(family, **variant)
    x = random_batch()
    mask = torch.ones_like(x)
    mask[0, -4:] = 0
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        sdpa = model(x, attention_mask=mask).logits
        model.set_attn_implementation("eager")
        eager = model(x, attention_mask=mask).logits
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(eager, sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_same_gradients(family):
    def grads(checkpointing):
        model = tiny_model(family, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
        if checkpointing:
            enable_activation_checkpointing(model)
            assert all(layer.gradient_checkpointing for layer in model.base_model.modules()
                       if hasattr(layer, "_gradient_checkpointing_func"))
        x = random_batch()
        loss = model(x, labels=labels_for(family, x)).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_a, grads_a = grads(False)
    loss_b, grads_b = grads(True)
    torch.testing.assert_close(loss_a, loss_b)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "family,variant",
    [(f, v) for f in FAMILIES for v in VARIANTS]
    + [("microgpt", {"num_experts": 4, "num_experts_per_tok": 2}),
       ("microbert", {"position_embedding_type": "rotary", "pre_norm": True}), ("microgpt", SPEEDRUN)],
    ids=["microbert-default", "microbert-options", "microgpt-default", "microgpt-options", "microgpt-moe",
         "microbert-rotary", "microgpt-speedrun"],
)
def test_training_steps_change_every_parameter(family, variant):
    model = tiny_model(family, **variant).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = random_batch(batch=4, seq=16)
    losses = []
    for _ in range(5):
        loss = model(x, labels=labels_for(family, x)).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]
    for name, p in model.named_parameters():
        if name == "model.embeddings.token_type_embeddings.weight":
            # only the row of segment 0 is used by single-segment batches
            assert not torch.equal(p[0], before[name][0]), name
            continue
        assert not torch.equal(p, before[name]), f"{name} did not change"


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_is_exact_under_gradient_accumulation(family):
    """Trainer passes num_items_in_batch; two half-batches must then add up to the full batch's loss and
    gradient (the trap: a forward taking **kwargs that returns a plain mean is N times too large)."""
    model = tiny_model(family, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    x = random_batch(batch=4, seq=16)
    labels = labels_for(family, x)
    labels[0, 3:9] = -100  # unequal token counts per half
    full = model(x, labels=labels).loss
    full.backward()
    full_grad = model.get_input_embeddings().weight.grad.clone()
    model.zero_grad()
    scored = labels[..., 1:] if family == "microgpt" else labels
    n_items = (scored != -100).sum()
    total = 0
    for half in (slice(0, 2), slice(2, 4)):
        loss = model(x[half], labels=labels[half], num_items_in_batch=n_items).loss
        loss.backward()
        total = total + loss.detach()
    torch.testing.assert_close(total, full.detach())
    torch.testing.assert_close(model.get_input_embeddings().weight.grad, full_grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_resize_token_embeddings(family):
    model = tiny_model(family)
    model.resize_token_embeddings(VOCAB + 13)
    assert model.config.vocab_size == VOCAB + 13
    assert model.get_output_embeddings().weight.shape[0] == VOCAB + 13
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    if family == "microbert":
        assert model.decoder.bias.shape == (VOCAB + 13,)
    x = torch.tensor([[5, 6, VOCAB + 12]])
    with torch.no_grad():
        assert model(x).logits.shape == (1, 3, VOCAB + 13)


@pytest.mark.parametrize(
    "family,field,kwargs",
    [
        ("microbert", "hidden_size", dict(hidden_size=10, num_attention_heads=4)),
        ("microgpt", "hidden_size", dict(hidden_size=10, num_attention_heads=4)),
        ("microbert", "num_hidden_layers", dict(num_hidden_layers=0)),
        ("microgpt", "vocab_size", dict(vocab_size=-5)),
        ("microbert", "hidden_dropout_prob", dict(hidden_dropout_prob=1.5)),
        ("microgpt", "hidden_act", dict(hidden_act="swishy")),
        ("microbert", "mlp_type", dict(mlp_type="moe")),
        ("microgpt", "num_experts_per_tok", dict(num_experts=4, num_experts_per_tok=5)),
        ("microgpt", "num_experts", dict(num_experts=1)),
        ("microbert", "pad_token_id", dict(vocab_size=100, pad_token_id=100)),
        ("microbert", "position_embedding_type", dict(position_embedding_type="relative_key")),
        # RoPE rotates pairs of a head's dimensions: an odd head size failed in the forward pass with a shape error
        ("microbert", "position_embedding_type", dict(hidden_size=36, num_attention_heads=4, position_embedding_type="rotary")),
        ("microgpt", "position_embedding_type", dict(hidden_size=36, num_attention_heads=4, position_embedding_type="rotary")),
    ],
)
def test_invalid_config_is_refused_naming_the_field(family, field, kwargs):
    cls = MicroBertConfig if family == "microbert" else MicroGPTConfig
    with pytest.raises(StrictDataclassError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize(
    "family,field,kwargs",
    [
        ("microbert", "pre_norm", dict(pre_norm="yes")),  # "yes" is truthy: it used to build a pre-LN model
        ("microbert", "use_bias", dict(use_bias=3)),
        ("microbert", "hidden_size", dict(hidden_size="256")),
        ("microbert", "position_embedding_type", dict(position_embedding_type=None)),
        ("microgpt", "num_experts", dict(num_experts=2.5)),
        ("microgpt", "use_bias", dict(use_bias="false")),
        ("microgpt", "layer_norm_eps", dict(layer_norm_eps="1e-5")),
    ],
)
def test_config_types_are_strict_and_the_error_names_the_field(family, field, kwargs):
    cls = MicroBertConfig if family == "microbert" else MicroGPTConfig
    with pytest.raises(StrictDataclassError, match=field):
        cls(**kwargs)


def test_strict_configs_take_ints_for_floats_and_round_trip(tmp_path):
    config = MicroBertConfig(hidden_dropout_prob=0, rope_theta=10000, layer_norm_eps=1, pre_norm=True)
    config.save_pretrained(tmp_path)
    again = MicroBertConfig.from_pretrained(tmp_path)
    assert again.pre_norm is True and again.hidden_dropout_prob == 0 and again.rope_theta == 10000
    assert MicroGPTConfig(hidden_dropout_prob=0, router_aux_loss_coef=0).intermediate_size == 4 * 768


def test_auto_classes_are_registered():
    assert type(AutoConfig.for_model("microbert")) is MicroBertConfig
    assert type(AutoConfig.for_model("microgpt")) is MicroGPTConfig
    assert type(AutoModelForMaskedLM.from_config(tiny_config("microbert"))) is MicroBertForMaskedLM
    assert type(AutoModelForCausalLM.from_config(tiny_config("microgpt"))) is MicroGPTForCausalLM
    assert hfmicro.MicroBertModel.__name__ == "MicroBertModel"


def test_copied_helpers_are_identical_to_their_source():
    """Each modeling file ships alone with a checkpoint (trust_remote_code), so the helpers the two share are
    copies; every copy says `# Copied from <module>.<name>` on the line above it and must stay identical to it."""
    import ast
    import importlib
    import inspect

    from hfmicro.models.microbert import modeling_microbert
    from hfmicro.models.microgpt import modeling_microgpt

    copies = 0
    for module in (modeling_microbert, modeling_microgpt):
        source = inspect.getsource(module)
        lines = source.splitlines()
        for node in ast.parse(source).body:
            marker = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if marker.startswith("# Copied from "):
                origin_module, _, name = marker.removeprefix("# Copied from ").rpartition(".")
                original = inspect.getsource(getattr(importlib.import_module(origin_module), name))
                copy = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
                assert copy == original, f"{module.__name__}.{node.name} differs from its source"
                copies += 1
    assert copies >= 2  # rotary_cos_sin, apply_rotary

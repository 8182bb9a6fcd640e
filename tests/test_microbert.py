"""MicroBERT specifics: sparse MLM prediction, conversion to stock BertForMaskedLM."""

import pytest
import torch

from hfmicro import MicroBertForMaskedLM, to_stock
from helpers import VOCAB, mlm_labels, random_batch, tiny_model


@pytest.mark.parametrize("pre_norm", [False, True])
def test_sparse_prediction_matches_dense(pre_norm):
    sparse = tiny_model("microbert", pre_norm=pre_norm, sparse_prediction=True)
    dense = MicroBertForMaskedLM(sparse.config.__class__(**(sparse.config.to_diff_dict() | {"sparse_prediction": False})))
    dense.load_state_dict(sparse.state_dict())
    dense.eval()
    x = random_batch(batch=4, seq=16)
    labels = mlm_labels(x, rate=0.25)
    with torch.no_grad():
        s, d = sparse(x, labels=labels), dense(x, labels=labels)
        full = sparse(x).logits  # without labels the logits are dense, as pipelines need
    n_masked = int((labels != -100).sum())
    assert s.logits.shape == (n_masked, VOCAB)
    assert d.logits.shape == full.shape == (4, 16, VOCAB)
    torch.testing.assert_close(s.loss, d.loss)
    torch.testing.assert_close(s.logits, d.logits[labels != -100])
    torch.testing.assert_close(full, d.logits)
    # and the loss is the plain mean cross-entropy over masked tokens
    reference = torch.nn.functional.cross_entropy(full.view(-1, VOCAB), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(s.loss, reference)


@pytest.mark.parametrize("type_vocab_size", [2, 0])
@pytest.mark.parametrize("tied", [True, False])
def test_to_stock_bert_gives_same_logits(type_vocab_size, tied):
    # an untied decoder was converted from the input embeddings, silently: logits off by up to 0.35
    model = tiny_model("microbert", type_vocab_size=type_vocab_size, tie_word_embeddings=tied)
    stock = to_stock(model)
    assert type(stock).__name__ == "BertForMaskedLM"
    # BERT always has a token-type row; untied, transformers unties its decoder's bias from the head's bias too
    extra = (model.config.hidden_size if type_vocab_size == 0 else 0) + (0 if tied else model.config.vocab_size)
    assert stock.num_parameters() == model.num_parameters() + extra
    assert stock.config.tie_word_embeddings == tied
    x = random_batch()
    mask = torch.ones_like(x)
    mask[1, 8:] = 0
    token_types = torch.zeros_like(x)
    if type_vocab_size:
        token_types[:, 6:] = 1
    with torch.no_grad():
        ours = model(x, attention_mask=mask, token_type_ids=token_types if type_vocab_size else None).logits
        theirs = stock(x, attention_mask=mask, token_type_ids=token_types).logits
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("option,value", [("pre_norm", True), ("use_bias", False), ("mlp_type", "glu"),
                                          ("position_embedding_type", "rotary"), ("decoder_bias", False),
                                          ("qk_norm", True), ("value_residual", True)])
def test_to_stock_refuses_incompatible_options(option, value):
    model = tiny_model("microbert", **{option: value})
    with pytest.raises(ValueError, match=option):
        to_stock(model)


def test_head_act_sets_only_the_prediction_heads_activation():
    model = tiny_model("microbert", hidden_act="relu2", head_act="gelu")
    plain = tiny_model("microbert", hidden_act="relu2")
    assert type(plain.head.act) is type(model.model.layers[0].mlp.act) is type(plain.model.layers[0].mlp.act)
    assert type(model.head.act).__name__ == "GELUActivation" != type(plain.head.act).__name__
    model.load_state_dict(plain.state_dict())  # no new weights: only the head's nonlinearity differs
    x = random_batch()
    with torch.no_grad():
        hidden = plain.model(x).last_hidden_state
        torch.testing.assert_close(model(x).logits, plain.decoder(plain.head.norm(
            torch.nn.functional.gelu(plain.head.dense(hidden)))))
    with pytest.raises(Exception, match="head_act"):
        tiny_model("microbert", head_act="swishy")
    # stock BERT's head uses hidden_act: a head_act equal to it converts, any other is refused
    assert type(to_stock(tiny_model("microbert", head_act="gelu"))).__name__ == "BertForMaskedLM"
    with pytest.raises(ValueError, match="head_act"):
        to_stock(tiny_model("microbert", head_act="relu"))


def test_post_ln_default_and_pre_ln_option_differ_in_structure():
    post, pre = tiny_model("microbert"), tiny_model("microbert", pre_norm=True)
    assert isinstance(post.model.final_norm, torch.nn.Identity)
    assert isinstance(pre.model.final_norm, torch.nn.LayerNorm)
    assert pre.num_parameters() == post.num_parameters() + 2 * post.config.hidden_size


def test_decoder_bias_follows_use_bias_unless_set():
    assert tiny_model("microbert").decoder.bias is not None  # BERT
    assert tiny_model("microbert", use_bias=False).decoder.bias is None
    model = tiny_model("microbert", use_bias=False, decoder_bias=True)  # ModernBERT: no biases but this one
    assert model.decoder.bias is not None and not model.decoder.bias.any()
    assert model.decoder.weight is model.model.embeddings.tok_embeddings.weight  # still tied
    assert model.num_parameters() == tiny_model("microbert", use_bias=False).num_parameters() + VOCAB
    # a converted checkpoint with decoder_bias=True (and BERT's biases elsewhere) is still a BertForMaskedLM
    stock = to_stock(tiny_model("microbert", decoder_bias=True))
    assert type(stock).__name__ == "BertForMaskedLM"


def test_residual_init_scales_or_zeroes_only_the_projections_into_the_residual_stream():
    layers = 4
    normal, scaled, zero = (tiny_model("microbert", num_hidden_layers=layers, hidden_size=64, intermediate_size=256,
                                       pre_norm=True, residual_init=r) for r in ("normal", "scaled", "zero"))
    std = normal.config.initializer_range
    for model, expected in ((normal, std), (scaled, std / (2 * layers) ** 0.5)):
        for layer in model.model.layers:
            for projection in (layer.attn.out, layer.mlp.down):
                assert abs(projection.weight.std().item() - expected) < 0.15 * expected
            assert abs(layer.attn.qkv.weight.std().item() - std) < 0.15 * std  # the rest keeps BERT's init
    # zero: every pre-LN layer starts as the identity
    x = torch.randn(2, 10, 64)
    with torch.no_grad():
        for layer in zero.model.layers:
            torch.testing.assert_close(layer(x)[0], x)
    with pytest.raises(Exception, match="residual_init"):
        tiny_model("microbert", residual_init="xavier")


def test_value_residual_mixes_the_first_layers_values_into_every_later_layer():
    plain = tiny_model("microbert", num_hidden_layers=3, pre_norm=True, position_embedding_type="rotary")
    mixed = tiny_model("microbert", num_hidden_layers=3, pre_norm=True, position_embedding_type="rotary",
                       value_residual=True)
    # one learned scalar per layer after the first, starting at an even mix
    lambdas = [layer.attn.value_lambda for layer in mixed.model.layers]
    assert lambdas[0] is None and [v.item() for v in lambdas[1:]] == [0.5, 0.5]
    assert mixed.num_parameters() == plain.num_parameters() + 2
    mixed.load_state_dict(plain.state_dict(), strict=False)
    x = random_batch()
    with torch.no_grad():
        for v in lambdas[1:]:
            v.fill_(1.0)  # only its own values: the plain model
        torch.testing.assert_close(mixed(x).logits, plain(x).logits)
        lambdas[2].fill_(0.0)  # the last layer attends over the first layer's values
        assert not torch.allclose(mixed(x).logits, plain(x).logits)
    # the mix is learned
    labels = mlm_labels(x, rate=0.3)
    mixed(x, labels=labels).loss.backward()
    assert all(v.grad is not None and v.grad != 0 for v in lambdas[1:])

"""Conversion to stock transformers models.

`to_stock(model)` copies a MicroBERT / MicroGPT checkpoint into a stock `BertForMaskedLM` /
`GPT2LMHeadModel` with identical outputs, so the weights also work with tools that only know the
`bert` and `gpt2` architectures (ONNX exporters, transformers.js, text-generation servers, ...).
"""

import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from .models.microbert import MicroBertForMaskedLM
from .models.microgpt import MicroGPTForCausalLM


# the config fields BertConfig names as MicroBertConfig does
_BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "initializer_range", "layer_norm_eps", "pad_token_id", "bos_token_id", "eos_token_id",
                "tie_word_embeddings")
# GPT2Config's name for each MicroGPTConfig field (GPT-2 drops out of embeddings and residuals alike)
_GPT2_FIELDS = {"vocab_size": "vocab_size", "n_positions": "max_position_embeddings", "n_embd": "hidden_size",
                "n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_inner": "intermediate_size",
                "activation_function": "hidden_act", "resid_pdrop": "hidden_dropout_prob",
                "embd_pdrop": "hidden_dropout_prob", "attn_pdrop": "attention_probs_dropout_prob",
                "layer_norm_epsilon": "layer_norm_eps", "initializer_range": "initializer_range",
                "bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id", "pad_token_id": "pad_token_id"}


def _require_compatible(model, compatible: dict, target: str) -> None:
    """Refuse, naming the option, a model that uses an option the stock architecture lacks."""
    for option, value in compatible.items():
        if getattr(model.config, option) != value:
            raise ValueError(
                f"cannot convert {type(model).__name__} to {target}: {option}={getattr(model.config, option)!r} has "
                f"no equivalent there (convertible checkpoints use the default {option})"
            )


def _microbert_to_bert(model: MicroBertForMaskedLM) -> BertForMaskedLM:
    cfg = model.config
    _require_compatible(model, {"pre_norm": False, "use_bias": True, "mlp_type": "mlp",
                                "position_embedding_type": "absolute", "qk_norm": False, "value_residual": False},
                        "BertForMaskedLM")
    if cfg.decoder_bias is False:  # BERT's MLM head always has one
        _require_compatible(model, {"decoder_bias": None}, "BertForMaskedLM")
    if cfg.head_act is not None:  # BERT's MLM head uses hidden_act
        _require_compatible(model, {"head_act": cfg.hidden_act}, "BertForMaskedLM")
    # BERT always has token types: without ours, one all-zero row adds nothing
    stock_config = BertConfig(**{name: getattr(cfg, name) for name in _BERT_FIELDS},
                              type_vocab_size=max(cfg.type_vocab_size, 1))
    src = model.state_dict()
    emb = model.model.embeddings
    sd = {
        "bert.embeddings.word_embeddings.weight": src["model.embeddings.tok_embeddings.weight"],
        "bert.embeddings.position_embeddings.weight": src["model.embeddings.position_embeddings.weight"],
        "bert.embeddings.token_type_embeddings.weight": (
            src["model.embeddings.token_type_embeddings.weight"]
            if emb.token_type_embeddings is not None
            else torch.zeros(1, cfg.hidden_size, dtype=emb.tok_embeddings.weight.dtype)
        ),
        "bert.embeddings.LayerNorm.weight": src["model.embeddings.norm.weight"],
        "bert.embeddings.LayerNorm.bias": src["model.embeddings.norm.bias"],
        "cls.predictions.transform.dense.weight": src["head.dense.weight"],
        "cls.predictions.transform.dense.bias": src["head.dense.bias"],
        "cls.predictions.transform.LayerNorm.weight": src["head.norm.weight"],
        "cls.predictions.transform.LayerNorm.bias": src["head.norm.bias"],
        "cls.predictions.bias": src["decoder.bias"],
        "cls.predictions.decoder.weight": src["decoder.weight"],  # the embeddings when tied, its own otherwise
        "cls.predictions.decoder.bias": src["decoder.bias"],
    }
    names = {  # ours -> stock, within one layer
        "attn.out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "mlp.up": "intermediate.dense",
        "mlp.down": "output.dense",
        "mlp_norm": "output.LayerNorm",
    }
    for i in range(cfg.num_hidden_layers):
        ours, theirs = f"model.layers.{i}.", f"bert.encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = src[f"{ours}attn.qkv.{kind}"].chunk(3, dim=0)
            sd[f"{theirs}attention.self.query.{kind}"] = q
            sd[f"{theirs}attention.self.key.{kind}"] = k
            sd[f"{theirs}attention.self.value.{kind}"] = v
            for a, b in names.items():
                sd[f"{theirs}{b}.{kind}"] = src[f"{ours}{a}.{kind}"]
    stock = BertForMaskedLM(stock_config)
    stock.load_state_dict(sd, strict=True)
    return stock


def _microgpt_to_gpt2(model: MicroGPTForCausalLM) -> GPT2LMHeadModel:
    cfg = model.config
    _require_compatible(model, {"use_bias": True, "mlp_type": "mlp", "num_experts": 0, "position_embedding_type": "absolute",
                                "qk_norm": False, "tie_word_embeddings": True}, "GPT2LMHeadModel")
    stock_config = GPT2Config(**{theirs: getattr(cfg, ours) for theirs, ours in _GPT2_FIELDS.items()})
    sd = {}
    for name, tensor in model.state_dict().items():
        if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            tensor = tensor.t()  # GPT-2's Conv1D stores (in, out); nn.Linear stores (out, in)
        sd[name] = tensor
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
    stock = GPT2LMHeadModel(stock_config)
    stock.load_state_dict(sd, strict=True)
    return stock


def to_stock(model: PreTrainedModel) -> PreTrainedModel:
    """A stock `BertForMaskedLM` / `GPT2LMHeadModel` computing the same logits as `model` (eval mode, same
    dtype). Raises ValueError naming the option when the model uses one the stock architecture lacks."""
    if isinstance(model, MicroBertForMaskedLM):
        stock = _microbert_to_bert(model)
    elif isinstance(model, MicroGPTForCausalLM):
        stock = _microgpt_to_gpt2(model)
    else:
        raise TypeError(f"to_stock converts MicroBertForMaskedLM or MicroGPTForCausalLM, not {type(model).__name__}")
    param = next(model.parameters())
    return stock.to(device=param.device, dtype=param.dtype).eval()

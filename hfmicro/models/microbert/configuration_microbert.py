"""MicroBERT configuration.

Defaults are architecture-compatible with stock BERT (post-LN, token-type embeddings, biases, dropout
0.1), so the BERT-base dimensions give exactly the parameter count of `BertForMaskedLM` and
`hfmicro.to_stock` can turn a checkpoint into one. The options that train small models better on
little compute (pre-LN, no biases, no dropout, GLU MLP) are opt-in; the recipes choose them.

This file imports only transformers: it is copied next to saved checkpoints and loaded with
`trust_remote_code=True` where hfmicro is not installed.
"""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig


@strict
class MicroBertConfig(PreTrainedConfig):
    r"""
    Args:
        vocab_size: tokens in the vocabulary (rows of the tied embedding / output matrix).
        hidden_size: width of the residual stream.
        num_hidden_layers: transformer layers.
        num_attention_heads: attention heads; must divide `hidden_size`.
        intermediate_size: MLP width (for `mlp_type="glu"`, the width of each of the two branches).
        hidden_act: MLP activation, any key of `transformers.activations.ACT2FN`.
        head_act: activation of the MLM prediction head (dense -> act -> norm); None = `hidden_act`.
        hidden_dropout_prob: dropout on embeddings and on each residual branch.
        attention_probs_dropout_prob: dropout on attention probabilities.
        max_position_embeddings: longest sequence (learned absolute positions).
        type_vocab_size: token-type (segment) embeddings; 0 removes them.
        initializer_range: std of the normal init of every weight matrix.
        layer_norm_eps: LayerNorm epsilon (1e-12 as in BERT).
        pre_norm: False = post-LN as published BERT; True = pre-LN with a final norm, which tolerates the
            higher learning rates that make small models learn fast.
        use_bias: biases in linear layers and LayerNorms (False as in Cramming/ModernBERT).
        mlp_type: "mlp" (dense, act, dense) or "glu" (gated: act(gate) * up, then down).
        position_embedding_type: "absolute" (learned positions, as BERT) or "rotary" (RoPE on queries and keys,
            no position table): attention then sees relative offsets directly, which small MLMs need to
            learn to use their neighbours.
        rope_theta: base of the rotary frequencies.
        qk_norm: RMS-normalise each head's queries and keys before attention (no learned scale).
        decoder_bias: a bias on the vocabulary projection (it learns the unigram distribution at once);
            None = the same as `use_bias`.
        residual_init: init of the two projections per layer that write into the residual stream: "normal"
            (BERT: the same std as every weight), "scaled" (std / sqrt(2 * num_hidden_layers), as GPT-2 and
            ModernBERT) or "zero" (every layer starts as the identity, as modded-nanogpt).
        value_residual: every layer after the first attends over a learned mix of its own values and the
            first layer's (value residual learning, as ResFormer and modded-nanogpt); one scalar per layer.
        sparse_prediction: when `labels` are given, run the MLM head only on masked positions; logits then
            have shape (num_masked, vocab_size). Without labels the logits are always dense.
    """

    model_type = "microbert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    head_act: str | None = None
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float | int = 0.02
    layer_norm_eps: float | int = 1e-12
    pre_norm: bool = False
    use_bias: bool = True
    mlp_type: Literal["mlp", "glu"] = "mlp"
    position_embedding_type: Literal["absolute", "rotary"] = "absolute"
    rope_theta: float | int = 10000.0
    qk_norm: bool = False
    decoder_bias: bool | None = None
    residual_init: Literal["normal", "scaled", "zero"] = "normal"
    value_residual: bool = False
    sparse_prediction: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = True

    # `@strict` checks each field's type on assignment (naming it) and runs the `validate_*` methods
    # after __init__; they hold what a type cannot say.
    def validate_dimensions(self):
        """Refuse a configuration that cannot build a working model, naming the field."""
        name = type(self).__name__
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                      "intermediate_size", "max_position_embeddings"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}.{field} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{name}.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}: pick a hidden_size that is a multiple of the head count"
            )
        if self.type_vocab_size < 0:
            raise ValueError(f"{name}.type_vocab_size must be an integer >= 0, got {self.type_vocab_size!r}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}.{field} must be in [0, 1), got {value!r}")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"{name}.hidden_act={self.hidden_act!r} is unknown; use one of {sorted(ACT2FN)}")
        if self.head_act is not None and self.head_act not in ACT2FN:
            raise ValueError(f"{name}.head_act={self.head_act!r} is unknown; use one of {sorted(ACT2FN)}")
        if self.position_embedding_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"{name}.position_embedding_type='rotary' needs an even head size "
                             f"(hidden_size / num_attention_heads = {self.hidden_size // self.num_attention_heads})")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"{name}.pad_token_id={self.pad_token_id} is outside the vocabulary (size {self.vocab_size})")


__all__ = ["MicroBertConfig"]

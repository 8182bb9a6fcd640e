"""MicroGPT configuration.

Defaults are GPT-2 as published (learned positions, pre-LN, tied embeddings, biases, dropout 0.1,
gelu_new), so the GPT-2-small dimensions give exactly 124,439,808 parameters and `hfmicro.to_stock`
turns a checkpoint into a `GPT2LMHeadModel`. No biases, no dropout, a GLU MLP and mixture-of-experts
MLPs are opt-in, and so is what the GPT speedruns (modded-nanogpt, nanochat) found: rotary positions,
QK-norm, ReLU² (`hidden_act="relu2"`), zero-initialised output projections, an untied head.

This file imports only transformers: it is copied next to saved checkpoints and loaded with
`trust_remote_code=True` where hfmicro is not installed.
"""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig


@strict
class MicroGPTConfig(PreTrainedConfig):
    r"""
    Args:
        vocab_size: tokens in the vocabulary (rows of the tied embedding / output matrix).
        max_position_embeddings: context length (learned absolute positions).
        hidden_size: width of the residual stream.
        num_hidden_layers: transformer blocks.
        num_attention_heads: attention heads; must divide `hidden_size`.
        intermediate_size: MLP width; None means 4 * hidden_size as in GPT-2. For `mlp_type="glu"`, the
            width of each of the two branches.
        hidden_act: MLP activation, any key of `transformers.activations.ACT2FN`.
        hidden_dropout_prob: dropout on embeddings and on each residual branch (GPT-2's embd/resid_pdrop).
        attention_probs_dropout_prob: dropout on attention probabilities (GPT-2's attn_pdrop).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: std of the normal init; residual projections use it / sqrt(2 * layers) (GPT-2).
        use_bias: biases in linear layers and LayerNorms.
        mlp_type: "mlp" (dense, act, dense) or "glu" (gated: act(gate) * up, then down).
        num_experts: 0 = dense MLP; otherwise every block's MLP is a mixture of this many experts.
        num_experts_per_tok: experts each token is routed to (top-k).
        router_aux_loss_coef: weight of the load-balancing loss added to the LM loss.
        position_embedding_type: "absolute" (learned, GPT-2) or "rotary" (RoPE on queries and keys).
        rope_theta: RoPE base period.
        qk_norm: RMS-normalise each head's queries and keys before attention (no learned scale).
        zero_init_residual: initialise the projections that write into the residual stream to zero, so
            every block starts as the identity.
        tie_word_embeddings: the output head shares the token-embedding matrix (GPT-2); False = untied.
        use_cache: return the key/value cache (generation).
    """

    model_type = "microgpt"
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 50257
    max_position_embeddings: int = 1024
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int | None = None
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    layer_norm_eps: float | int = 1e-5
    initializer_range: float | int = 0.02
    use_bias: bool = True
    mlp_type: Literal["mlp", "glu"] = "mlp"
    num_experts: int = 0
    num_experts_per_tok: int = 2
    router_aux_loss_coef: float | int = 0.01
    position_embedding_type: Literal["absolute", "rotary"] = "absolute"
    rope_theta: float | int = 10000.0
    qk_norm: bool = False
    zero_init_residual: bool = False
    use_cache: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256
    pad_token_id: int | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        super().__post_init__(**kwargs)

    # `@strict` checks each field's type on assignment (naming it) and runs the `validate_*` methods
    # after __init__; they hold what a type cannot say.
    def validate_dimensions(self):
        """Refuse a configuration that cannot build a working model, naming the field."""
        name = type(self).__name__
        for field in ("vocab_size", "max_position_embeddings", "hidden_size", "num_hidden_layers",
                      "num_attention_heads", "intermediate_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}.{field} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{name}.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}: pick a hidden_size that is a multiple of the head count"
            )
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}.{field} must be in [0, 1), got {value!r}")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"{name}.hidden_act={self.hidden_act!r} is unknown; use one of {sorted(ACT2FN)}")
        if self.position_embedding_type == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"{name}.position_embedding_type='rotary' needs an even head size "
                             f"(hidden_size / num_attention_heads = {self.hidden_size // self.num_attention_heads})")
        if self.num_experts < 0 or self.num_experts == 1:
            raise ValueError(f"{name}.num_experts must be 0 (dense) or >= 2, got {self.num_experts!r}")
        if self.num_experts and not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"{name}.num_experts_per_tok={self.num_experts_per_tok} must be between 1 and "
                f"num_experts={self.num_experts}"
            )


__all__ = ["MicroGPTConfig"]

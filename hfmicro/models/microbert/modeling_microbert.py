"""MicroBERT: a BERT encoder and masked-LM head in one readable file.

    x = embed(tokens) + embed(positions) [+ embed(token types)] -> norm -> dropout
    post-LN (BERT):  x = norm(x + attn(x));  x = norm(x + mlp(x))
    pre-LN (opt-in): x = x + attn(norm(x));  x = x + mlp(norm(x));  final norm
    value residual (opt-in): every layer after the first attends over lambda*v + (1-lambda)*v_first
    MLM head: dense -> act -> norm -> decoder (tied to the token embeddings, with or without a bias)

With `labels`, the head runs only on the masked positions (sparse prediction, as in Cramming and
ModernBERT): at 15-30 % masking that skips most of the vocab projection, the largest matmul of a small
model. The loss is identical to the dense computation.

Imports only torch, transformers and the sibling configuration file, so a saved checkpoint loads with
`trust_remote_code=True` where hfmicro is not installed.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_microbert import MicroBertConfig


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # (B, nh, T, hs)
    key: torch.Tensor,  # (B, nh, S, hs)
    value: torch.Tensor,  # (B, nh, S, hs)
    attention_mask: torch.Tensor | None,  # None, bool (True = attend) or additive float, broadcastable to (B, nh, T, S)
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention; every other backend in ALL_ATTENTION_FUNCTIONS must agree with it."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, nh, T, S)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
        else:
            attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # (B, T, nh, hs)
    return attn_output, attn_weights


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE angles for each position, computed on the fly (no buffer to restore after loading)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    freqs = position_ids[..., None].float() * inv_freq  # (B, T, hs/2)
    angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, hs)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)  # (B, nh, T, hs)


class MicroBertEmbeddings(nn.Module):
    def __init__(self, config: MicroBertConfig):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "absolute"
            else None  # rotary: positions enter in attention
        )
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, config.hidden_size) if config.type_vocab_size > 0 else None
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None, inputs_embeds=None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)  # (B, T, C)
        embeddings = inputs_embeds
        if self.position_embeddings is not None:
            if position_ids is None:
                position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device).unsqueeze(0)  # (1, T)
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                # segment 0 for every token: row 0 of the table, without materialising a (B, T) index
                embeddings = embeddings + self.token_type_embeddings.weight[0]
            else:
                embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(embeddings))


class MicroBertAttention(nn.Module):
    def __init__(self, config: MicroBertConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.use_bias)  # one fused matmul
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.out.is_residual_projection = True
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # value residual (ResFormer, modded-nanogpt): a learned share of the first layer's values
        self.value_lambda = nn.Parameter(torch.empty(())) if config.value_residual and layer_idx > 0 else None

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                first_value: torch.Tensor | None = None, **kwargs):
        B, T, C = hidden_states.shape
        qkv = self.qkv(hidden_states).view(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, nh, hs)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        if self.value_lambda is not None:
            value = self.value_lambda * value + (1 - self.value_lambda) * first_value  # (B, nh, T, hs)
        if self.config.qk_norm:
            query, key = nn.functional.rms_norm(query, (self.head_dim,)), nn.functional.rms_norm(key, (self.head_dim,))
        if rotary is not None:
            query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)
        return self.dropout(self.out(attn_output)), attn_weights, value


class MicroBertMLP(nn.Module):
    def __init__(self, config: MicroBertConfig):
        super().__init__()
        self.glu = config.mlp_type == "glu"
        up_size = 2 * config.intermediate_size if self.glu else config.intermediate_size
        self.up = nn.Linear(config.hidden_size, up_size, bias=config.use_bias)
        self.act = ACT2FN[config.hidden_act]
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.use_bias)
        self.down.is_residual_projection = True
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.glu:
            gate, up = self.up(hidden_states).chunk(2, dim=-1)  # 2 x (B, T, ff)
            hidden_states = self.act(gate) * up
        else:
            hidden_states = self.act(self.up(hidden_states))
        return self.dropout(self.down(hidden_states))


class MicroBertLayer(GradientCheckpointingLayer):
    def __init__(self, config: MicroBertConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.attn = MicroBertAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.mlp = MicroBertMLP(config)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, rotary=None,
        first_value: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the new hidden states (B, T, C) and the values this layer attended over (B, nh, T, hs)."""
        if self.pre_norm:
            attn_output, _, value = self.attn(self.attn_norm(hidden_states), attention_mask, rotary, first_value, **kwargs)
            hidden_states = hidden_states + attn_output
            return hidden_states + self.mlp(self.mlp_norm(hidden_states)), value
        attn_output, _, value = self.attn(hidden_states, attention_mask, rotary, first_value, **kwargs)
        hidden_states = self.attn_norm(hidden_states + attn_output)
        return self.mlp_norm(hidden_states + self.mlp(hidden_states)), value


class MicroBertPreTrainedModel(PreTrainedModel):
    config: MicroBertConfig
    config_class = MicroBertConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MicroBertLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # what output_hidden_states / output_attentions collect, through forward hooks
    _can_record_outputs = {"hidden_states": MicroBertLayer, "attentions": OutputRecorder(MicroBertAttention, index=1)}

    @torch.no_grad()
    def _init_weights(self, module):
        # BERT's init: normal(0, initializer_range) weights, zero biases and padding row, unit norms
        super()._init_weights(module)
        if isinstance(module, MicroBertAttention) and module.value_lambda is not None:
            init.constant_(module.value_lambda, 0.5)  # half its own values, half the first layer's
        # the projections into the residual stream, 2 per layer (marked on the Linear itself: transformers
        # skips _init_weights for custom-code modules that own no parameters directly)
        if getattr(module, "is_residual_projection", False) and self.config.residual_init != "normal":
            if self.config.residual_init == "zero":
                init.zeros_(module.weight)
            else:
                std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
                init.normal_(module.weight, mean=0.0, std=std)


class MicroBertModel(MicroBertPreTrainedModel):
    def __init__(self, config: MicroBertConfig):
        super().__init__(config)
        self.embeddings = MicroBertEmbeddings(config)
        self.layers = nn.ModuleList([MicroBertLayer(config, i) for i in range(config.num_hidden_layers)])
        # pre-LN leaves the residual stream un-normalised; post-LN already ends on a norm
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
            if config.pre_norm
            else nn.Identity()
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.tok_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.tok_embeddings = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T), 1 = token, 0 = padding
        token_type_ids: torch.LongTensor | None = None,  # (B, T)
        position_ids: torch.LongTensor | None = None,  # (B, T)
        inputs_embeds: torch.Tensor | None = None,  # (B, T, C)
        **kwargs,
    ) -> BaseModelOutput:
        # output_hidden_states / output_attentions are served by @capture_outputs (the last hidden state is the
        # final norm's output)
        kwargs.pop("output_hidden_states", None)
        kwargs.pop("output_attentions", None)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("MicroBertModel needs exactly one of input_ids or inputs_embeds")

        hidden_states = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, C)
        rotary = None
        if self.config.position_embedding_type == "rotary":
            if position_ids is None:
                position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device).unsqueeze(0)
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            rotary = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta)  # computed once for all layers
        # None, a bool mask or an additive mask, whatever the attention backend wants
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        first_value = None
        for layer in self.layers:
            hidden_states, value = layer(hidden_states, mask, rotary, first_value, **kwargs)  # (B, T, C)
            if first_value is None and self.config.value_residual:
                first_value = value  # (B, nh, T, hs)
        return BaseModelOutput(last_hidden_state=self.final_norm(hidden_states))


class MicroBertPredictionHead(nn.Module):
    """The transform before the vocabulary projection: dense -> act -> norm (as BERT's MLM head)."""

    def __init__(self, config: MicroBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.act = ACT2FN[config.head_act or config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(hidden_states)))


class MicroBertForMaskedLM(MicroBertPreTrainedModel):
    _tied_weights_keys = {"decoder.weight": "model.embeddings.tok_embeddings.weight"}

    def __init__(self, config: MicroBertConfig):
        super().__init__(config)
        self.model = MicroBertModel(config)
        self.head = MicroBertPredictionHead(config)
        decoder_bias = config.use_bias if config.decoder_bias is None else config.decoder_bias
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=decoder_bias)
        # a tied head is never saved on its own: Trainer, reloading a checkpoint (resume, best model) with
        # strict=False, ties it again when the missing keys are exactly these, and warns otherwise
        self._keys_to_ignore_on_save = set(self._tied_weights_keys) if config.tie_word_embeddings else None
        self.post_init()

    def get_output_embeddings(self):
        return self.decoder

    def set_output_embeddings(self, new_embeddings):
        self.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        token_type_ids: torch.LongTensor | None = None,  # (B, T)
        position_ids: torch.LongTensor | None = None,  # (B, T)
        inputs_embeds: torch.Tensor | None = None,  # (B, T, C)
        labels: torch.LongTensor | None = None,  # (B, T), -100 where no prediction is scored
        **kwargs,
    ) -> MaskedLMOutput:
        # Trainer passes num_items_in_batch (tokens scored in the whole accumulated batch); the loss is
        # then a sum divided by it, so gradient accumulation gives the same gradient as one big batch.
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, C)
        if labels is not None and self.config.sparse_prediction:
            scored = labels.reshape(-1) != -100  # (B*T,)
            hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])[scored]  # (M, C)
            labels = labels.reshape(-1)[scored]  # (M,)
        logits = self.decoder(self.head(hidden_states))  # (B, T, V), or (M, V) with sparse prediction

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits, labels, vocab_size=self.config.vocab_size, num_items_in_batch=num_items_in_batch
            )
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)


__all__ = ["MicroBertPreTrainedModel", "MicroBertModel", "MicroBertForMaskedLM"]

"""MicroGPT: a GPT-2 style decoder in one readable file.

    x = wte(tokens) + wpe(positions) -> dropout          (rotary: no wpe; RoPE on queries and keys)
    each block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))     (pre-LN, strictly causal)
    logits = lm_head(ln_f(x)), lm_head tied to wte (unless tie_word_embeddings=False)
    training with labels: the loss chunk by chunk, without the logits (LinearCrossEntropy)

Names follow GPT-2 (and nanoGPT), with `nn.Linear` instead of GPT-2's transposed Conv1D. The MLP can
be a mixture of experts (top-k routing with a Switch-style load-balancing loss).

Imports only torch, transformers and the sibling configuration file, so a saved checkpoint loads with
`trust_remote_code=True` where hfmicro is not installed.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_microgpt import MicroGPTConfig

# The KV cache's name in forward()'s arguments, the outputs and the mask functions: `past_key_values` up to
# transformers 5.23, `cache` from 5.24 on (whose generate() reads and passes only that one). This file ships with
# every checkpoint, so it meets both.
CACHE = "cache" if "cache" in MoeModelOutputWithPast.__dataclass_fields__ else "past_key_values"


class LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` against `targets` without keeping the (N, V) logits: each
    chunk of rows computes its logits, its loss and its share of the gradients of `hidden` and `weight` in the
    forward pass, then drops the logits (Liger-Kernel's fused linear cross-entropy, in PyTorch). Training
    holds one chunk's logits instead of all of them with their log-softmax and gradient: at GPT-2's 50k
    vocabulary, 16 x 1024 tokens, 3.3 GB of fp32 logits each. Backward only scales what forward stored."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_rows: int):
        # hidden (N, C), weight (V, C), targets (N,) with -100 = not scored
        grad_hidden = torch.empty_like(hidden)  # (N, C)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # (V, C)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_rows):
            h, t = hidden[start : start + chunk_rows], targets[start : start + chunk_rows]  # (n, C), (n,)
            logits = (h @ weight.t()).float()  # (n, V); bf16 matmul under autocast, fp32 softmax
            scored = t != -100
            t = t.masked_fill(~scored, 0)
            lse = torch.logsumexp(logits, dim=-1)  # (n,)
            loss += ((lse - logits.gather(1, t[:, None]).squeeze(1)) * scored).sum()
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits: d(loss)/d(logits) + onehot
            grad[torch.arange(len(t), device=t.device), t] -= 1.0
            grad = grad.mul_(scored[:, None]).to(h.dtype)
            grad_hidden[start : start + chunk_rows] = grad @ weight
            grad_weight += (grad.t() @ h).float()
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss.to(grad_hidden.dtype), grad_weight * grad_loss.to(grad_weight.dtype), None, None


LOSS_CHUNK_ELEMENTS = 1 << 24  # logits per chunk: 64 MB in fp32


def loss_chunk_rows(vocab_size: int) -> int:
    """Rows (tokens) whose logits LinearCrossEntropy computes at a time."""
    return max(1, LOSS_CHUNK_ELEMENTS // vocab_size)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """transformers' ForCausalLMLoss (labels unshifted, -100 not scored; a sum over `num_items_in_batch` when
    given, else the mean) of `hidden @ weight.T`, through LinearCrossEntropy, LOSS_CHUNK_ELEMENTS logits at a time."""
    targets = nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].reshape(-1)  # (B*T,): position t predicts t+1
    hidden = hidden.reshape(-1, hidden.shape[-1])  # (B*T, C)
    loss = LinearCrossEntropy.apply(hidden, weight, targets.to(hidden.device), loss_chunk_rows(weight.shape[0]))
    if num_items_in_batch is None:
        num_items_in_batch = (targets != -100).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # (B, nh, T, hs)
    key: torch.Tensor,  # (B, nh, S, hs), S = cached + new positions
    value: torch.Tensor,  # (B, nh, S, hs)
    attention_mask: torch.Tensor | None,  # bool (True = attend) or additive float, broadcastable to (B, nh, T, S)
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention; every other backend in ALL_ATTENTION_FUNCTIONS must agree with it."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, nh, T, S)
    if attention_mask is None:
        # the mask helpers hand back None only when plain causal masking is all that is needed
        T, S = query.shape[-2], key.shape[-2]
        causal = torch.ones(T, S, dtype=torch.bool, device=query.device).tril(S - T)
        attn_weights = attn_weights.masked_fill(~causal, torch.finfo(attn_weights.dtype).min)
    elif attention_mask.dtype == torch.bool:
        attn_weights = attn_weights.masked_fill(~attention_mask, torch.finfo(attn_weights.dtype).min)
    else:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # (B, T, nh, hs)
    return attn_output, attn_weights


# Copied from hfmicro.models.microbert.modeling_microbert.rotary_cos_sin
def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE angles for each position, computed on the fly (no buffer to restore after loading)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    freqs = position_ids[..., None].float() * inv_freq  # (B, T, hs/2)
    angles = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, hs)
    return angles.cos(), angles.sin()


# Copied from hfmicro.models.microbert.modeling_microbert.apply_rotary
def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)  # (B, nh, T, hs)


class MicroGPTAttention(nn.Module):
    def __init__(self, config: MicroGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.qk_norm = config.qk_norm
        self.is_causal = True
        self.c_attn = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.use_bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.use_bias)
        self.c_proj.is_residual_projection = True
        self.resid_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, T, C)
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ):
        B, T, C = hidden_states.shape
        qkv = self.c_attn(hidden_states).view(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, nh, hs)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        if self.qk_norm:
            query, key = nn.functional.rms_norm(query, (self.head_dim,)), nn.functional.rms_norm(key, (self.head_dim,))
        if rotary is not None:
            query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)
        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)  # 2 x (B, nh, S, hs)

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
        return self.resid_dropout(self.c_proj(attn_output)), attn_weights


class MicroGPTMLP(nn.Module):
    def __init__(self, config: MicroGPTConfig):
        super().__init__()
        self.glu = config.mlp_type == "glu"
        fc_size = 2 * config.intermediate_size if self.glu else config.intermediate_size
        self.c_fc = nn.Linear(config.hidden_size, fc_size, bias=config.use_bias)
        # GPT-2's gelu_new is the tanh approximation of GELU: PyTorch's fused kernel computes the same function
        # (to float rounding) in one pass instead of eight elementwise ops (15 % of a CPU training step at d256)
        self.act = ACT2FN["gelu_pytorch_tanh" if config.hidden_act == "gelu_new" else config.hidden_act]
        self.c_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.use_bias)
        self.c_proj.is_residual_projection = True
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.glu:
            gate, up = self.c_fc(hidden_states).chunk(2, dim=-1)  # 2 x (..., ff)
            hidden_states = self.act(gate) * up
        else:
            hidden_states = self.act(self.c_fc(hidden_states))
        return self.dropout(self.c_proj(hidden_states))


class MicroGPTRouter(nn.Module):
    """Scores the experts for each token and picks the top k; its logits feed the load-balancing loss."""

    def __init__(self, config: MicroGPTConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        router_logits = nn.functional.linear(x, self.weight)  # (N, E)
        probs = nn.functional.softmax(router_logits, dim=-1, dtype=torch.float32)
        weights, selected = probs.topk(self.top_k, dim=-1)  # 2 x (N, k)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)
        return router_logits, weights, selected


class MicroGPTMoE(nn.Module):
    """Top-k mixture of MLP experts. Each token's output is the renormalised-weighted sum of its k experts."""

    def __init__(self, config: MicroGPTConfig):
        super().__init__()
        self.num_experts = config.num_experts
        self.top_k = config.num_experts_per_tok
        self.gate = MicroGPTRouter(config)
        self.experts = nn.ModuleList([MicroGPTMLP(config) for _ in range(config.num_experts)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        B, T, C = hidden_states.shape
        x = hidden_states.reshape(-1, C)  # (N, C), N = B*T
        _, weights, selected = self.gate(x)  # 2 x (N, k)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            # every expert runs, possibly on zero tokens, so all parameters are always in the graph (DDP-safe)
            token_idx, slot = (selected == e).nonzero(as_tuple=True)
            out.index_add_(0, token_idx, expert(x[token_idx]) * weights[token_idx, slot, None])
        return out.view(B, T, C)


def load_balancing_loss(router_logits: tuple[torch.Tensor, ...], num_experts: int, top_k: int) -> torch.Tensor:
    """Switch Transformer auxiliary loss, E * sum_e(fraction routed to e * mean router prob of e), averaged
    over layers. It is 1.0 for a perfectly uniform router and grows as routing collapses onto few experts."""
    losses = []
    for logits in router_logits:  # (N, E) per layer
        probs = nn.functional.softmax(logits, dim=-1, dtype=torch.float32)
        selected = probs.topk(top_k, dim=-1).indices  # (N, k)
        routed = nn.functional.one_hot(selected, num_experts).float().sum(dim=1).mean(dim=0) / top_k  # (E,)
        losses.append(num_experts * (routed * probs.mean(dim=0)).sum())
    return torch.stack(losses).mean()


class MicroGPTBlock(GradientCheckpointingLayer):
    def __init__(self, config: MicroGPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.attn = MicroGPTAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.mlp = MicroGPTMoE(config) if config.num_experts else MicroGPTMLP(config)

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, rotary=None, **kwargs) -> torch.Tensor:
        hidden_states = hidden_states + self.attn(self.ln_1(hidden_states), attention_mask, past_key_values, rotary,
                                                  **kwargs)[0]
        return hidden_states + self.mlp(self.ln_2(hidden_states))  # (B, T, C)


class MicroGPTPreTrainedModel(PreTrainedModel):
    config: MicroGPTConfig
    config_class = MicroGPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MicroGPTBlock"]
    _skip_keys_device_placement = [CACHE]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # what output_hidden_states / output_attentions / output_router_logits collect, through forward hooks
    _can_record_outputs = {
        "hidden_states": MicroGPTBlock,
        "attentions": OutputRecorder(MicroGPTAttention, index=1),
        "router_logits": OutputRecorder(MicroGPTRouter, index=0),
    }

    @torch.no_grad()
    def _init_weights(self, module):
        # normal(0, initializer_range) for linear and embedding weights, zero biases, unit norms
        super()._init_weights(module)
        if isinstance(module, MicroGPTRouter):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if getattr(module, "is_residual_projection", False):
            # GPT-2's scaled init of the projections that write into the residual stream: 2 per block.
            # (Marked on the Linear itself: transformers skips _init_weights for custom-code modules that own
            # no parameters directly, such as MicroGPTAttention.)
            if self.config.zero_init_residual:
                init.zeros_(module.weight)  # every block starts as the identity (modded-nanogpt)
            else:
                std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
                init.normal_(module.weight, mean=0.0, std=std)

    def num_active_parameters(self) -> int:
        """Parameters used for one token: with MoE, only num_experts_per_tok of the experts count."""
        total = self.num_parameters()
        for module in self.modules():
            if isinstance(module, MicroGPTMoE):
                per_expert = sum(p.numel() for p in module.experts[0].parameters())
                total -= (module.num_experts - module.top_k) * per_expert
        return total


class MicroGPTModel(MicroGPTPreTrainedModel):
    def __init__(self, config: MicroGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "absolute"
            else None  # rotary: positions enter in attention
        )
        self.drop = nn.Dropout(config.hidden_dropout_prob)
        self.h = nn.ModuleList([MicroGPTBlock(config, i) for i in range(config.num_hidden_layers)])
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.use_bias)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def set_input_embeddings(self, value):
        self.wte = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, S): 1 = token, 0 = padding, over cached + new positions
        position_ids: torch.LongTensor | None = None,  # (B, T)
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,  # (B, T, C)
        use_cache: bool | None = None,
        **kwargs,
    ) -> MoeModelOutputWithPast:
        # output_hidden_states / output_attentions / output_router_logits are served by @capture_outputs
        for key in ("output_hidden_states", "output_attentions", "output_router_logits"):
            kwargs.pop(key, None)
        if "cache" in kwargs:  # the cache's name from transformers 5.24 on (before: past_key_values)
            past_key_values = kwargs.pop("cache")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("MicroGPTModel needs exactly one of input_ids or inputs_embeds")
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if self.gradient_checkpointing and self.training:
            use_cache = False  # recomputation would write the cache twice

        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, C)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        past_seen = past_key_values.get_seq_length() if past_key_values is not None else 0
        if past_seen + inputs_embeds.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"{past_seen + inputs_embeds.shape[1]} positions exceed max_position_embeddings="
                f"{self.config.max_position_embeddings}: shorten the input (or generate fewer tokens)"
            )
        if position_ids is None:
            position_ids = torch.arange(past_seen, past_seen + inputs_embeds.shape[1], device=inputs_embeds.device)
            position_ids = position_ids.unsqueeze(0)  # (1, T)
        rotary = None
        if self.wpe is not None:
            hidden_states = self.drop(inputs_embeds + self.wpe(position_ids))  # (B, T, C)
        else:
            hidden_states = self.drop(inputs_embeds)
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            rotary = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta)  # computed once for all layers

        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{CACHE: past_key_values},
        )
        for block in self.h:
            hidden_states = block(hidden_states, mask, past_key_values, rotary, **kwargs)  # (B, T, C)
        hidden_states = self.ln_f(hidden_states)
        return MoeModelOutputWithPast(last_hidden_state=hidden_states, **{CACHE: past_key_values if use_cache else None})


class MicroGPTForCausalLM(MicroGPTPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: MicroGPTConfig):
        super().__init__(config)
        self.transformer = MicroGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # a tied head is never saved on its own: Trainer, reloading a checkpoint (resume, best model) with
        # strict=False, ties it again when the missing keys are exactly these, and warns otherwise
        self._keys_to_ignore_on_save = set(self._tied_weights_keys) if config.tie_word_embeddings else None
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, T)
        attention_mask: torch.Tensor | None = None,  # (B, S)
        position_ids: torch.LongTensor | None = None,  # (B, T)
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,  # (B, T, C)
        labels: torch.LongTensor | None = None,  # (B, T), unshifted (the loss shifts); -100 = not scored
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> MoeCausalLMOutputWithPast:
        # Trainer passes num_items_in_batch (tokens scored in the whole accumulated batch); the loss is
        # then a sum divided by it, so gradient accumulation gives the same gradient as one big batch.
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if self.config.num_experts:
            kwargs["output_router_logits"] = True  # the load-balancing loss needs them
        outputs = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        # transformers' slice_logits_to_keep, which 5.21 and earlier lack: an int keeps the last ones (0: all)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        hidden_states = outputs.last_hidden_state[:, keep, :]  # (B, T, C)

        loss = aux_loss = logits = None
        if labels is not None and self.training and torch.is_grad_enabled():
            # training: the loss without the (B, T, V) logits, which are not returned (as Liger-Kernel does)
            loss = linear_cross_entropy(hidden_states, self.lm_head.weight, labels, num_items_in_batch)
        else:
            logits = self.lm_head(hidden_states)  # (B, T, V)
            if labels is not None:
                loss = self.loss_function(
                    logits, labels, vocab_size=self.config.vocab_size, num_items_in_batch=num_items_in_batch
                )
        if outputs.router_logits:
            aux_loss = load_balancing_loss(outputs.router_logits, self.config.num_experts, self.config.num_experts_per_tok)
            if loss is not None:
                weight = self.config.router_aux_loss_coef
                if num_items_in_batch is not None:
                    # the LM loss is a share of the accumulated batch's sum; give the aux loss the same share
                    scored = (labels[..., 1:] != -100).sum()
                    weight = weight * scored / num_items_in_batch
                loss = loss + weight * aux_loss.to(loss.device)

        return MoeCausalLMOutputWithPast(
            loss=loss,
            aux_loss=aux_loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
            **{CACHE: outputs.get(CACHE)},
        )


__all__ = ["MicroGPTPreTrainedModel", "MicroGPTModel", "MicroGPTForCausalLM"]

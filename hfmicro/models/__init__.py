"""The model families. Each lives in one folder: configuration_<name>.py + modeling_<name>.py.

Importing this package registers both families with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, PreTrainedModel

from .microbert import MicroBertConfig, MicroBertForMaskedLM, MicroBertModel
from .microgpt import MicroGPTConfig, MicroGPTForCausalLM, MicroGPTModel

AutoConfig.register("microbert", MicroBertConfig, exist_ok=True)
AutoModel.register(MicroBertConfig, MicroBertModel, exist_ok=True)
AutoModelForMaskedLM.register(MicroBertConfig, MicroBertForMaskedLM, exist_ok=True)
AutoConfig.register("microgpt", MicroGPTConfig, exist_ok=True)
AutoModel.register(MicroGPTConfig, MicroGPTModel, exist_ok=True)
AutoModelForCausalLM.register(MicroGPTConfig, MicroGPTForCausalLM, exist_ok=True)

# save_pretrained then copies the configuration/modeling files and writes `auto_map` into config.json
MicroBertConfig.register_for_auto_class()
MicroBertModel.register_for_auto_class("AutoModel")
MicroBertForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
MicroGPTConfig.register_for_auto_class()
MicroGPTModel.register_for_auto_class("AutoModel")
MicroGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Total, trainable and active (used per token: differs from total only for MoE) parameter counts.
    Tied weights are counted once."""
    total = model.num_parameters()
    trainable = model.num_parameters(only_trainable=True)
    active = model.num_active_parameters() if hasattr(model, "num_active_parameters") else total
    return {"total": total, "trainable": trainable, "active": active}


def enable_activation_checkpointing(model: PreTrainedModel) -> None:
    """Recompute each layer's activations during backward: activation_checkpointing_enable from
    transformers 5.23 on, gradient_checkpointing_enable (its older name) before."""
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs per token of a MicroBERT / MicroGPT config, for MFU and time estimates: 6 x (matmul
    parameters: layers and the vocabulary projection) + attention scores (PaLM appendix B: 6N + 12 L d T)."""
    layers, hidden = config.num_hidden_layers, config.hidden_size
    ff = config.intermediate_size * (2 if config.mlp_type == "glu" else 1)
    moe = isinstance(config, MicroGPTConfig) and config.num_experts
    experts = config.num_experts_per_tok if moe else 1  # experts each token passes through
    per_layer = 4 * hidden * hidden + experts * (ff + config.intermediate_size) * hidden
    matmul_params = layers * per_layer + hidden * config.vocab_size
    return 6 * matmul_params + 12 * layers * hidden * seq_len


__all__ = [
    "MicroBertConfig", "MicroBertModel", "MicroBertForMaskedLM", "MicroGPTConfig", "MicroGPTModel",
    "MicroGPTForCausalLM", "count_parameters", "enable_activation_checkpointing", "flops_per_token",
]

from .configuration_microgpt import MicroGPTConfig
from .modeling_microgpt import MicroGPTForCausalLM, MicroGPTModel, MicroGPTPreTrainedModel

__all__ = ["MicroGPTConfig", "MicroGPTModel", "MicroGPTForCausalLM", "MicroGPTPreTrainedModel"]

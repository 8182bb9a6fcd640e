from .configuration_microbert import MicroBertConfig
from .modeling_microbert import MicroBertForMaskedLM, MicroBertModel, MicroBertPreTrainedModel

__all__ = ["MicroBertConfig", "MicroBertModel", "MicroBertForMaskedLM", "MicroBertPreTrainedModel"]

"""hfmicro: pre-train tiny BERT and GPT-2 style models from scratch on the Hugging Face stack.

Importing hfmicro registers MicroBERT and MicroGPT with the transformers Auto classes, so
`AutoModelForMaskedLM.from_pretrained(folder)` and `pipeline(...)` work on our checkpoints. Saved
checkpoints also carry their modeling code (`auto_map`) and load with `trust_remote_code=True` where
hfmicro is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from .convert import count_parameters, to_stock
from .models.microbert import MicroBertConfig, MicroBertForMaskedLM, MicroBertModel
from .models.microgpt import MicroGPTConfig, MicroGPTForCausalLM, MicroGPTModel

__version__ = "0.1.0"

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

__all__ = [
    "MicroBertConfig",
    "MicroBertModel",
    "MicroBertForMaskedLM",
    "MicroGPTConfig",
    "MicroGPTModel",
    "MicroGPTForCausalLM",
    "to_stock",
    "count_parameters",
]

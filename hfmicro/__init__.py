"""hfmicro: pre-train tiny BERT and GPT-2 style models from scratch on the Hugging Face stack.

`import hfmicro` is cheap (the `hfmicro` command answers `--help` without torch or transformers); the
names below are imported on first use. Using any of them (or `import hfmicro.models`) registers MicroBERT
and MicroGPT with the transformers Auto classes, so `AutoModelForMaskedLM.from_pretrained(folder)` and
`pipeline(...)` work on our checkpoints. Saved checkpoints also carry their modeling code (`auto_map`)
and load with `trust_remote_code=True` where hfmicro is not installed.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "MicroBertConfig": "hfmicro.models",
    "MicroBertModel": "hfmicro.models",
    "MicroBertForMaskedLM": "hfmicro.models",
    "MicroGPTConfig": "hfmicro.models",
    "MicroGPTModel": "hfmicro.models",
    "MicroGPTForCausalLM": "hfmicro.models",
    "to_stock": "hfmicro.convert",
    "count_parameters": "hfmicro.models",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hfmicro' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)

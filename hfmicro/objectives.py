"""The pre-training objectives and every fact that differs between them, in one table.

Code that behaves differently for masked and causal language modelling reads the fact it needs here
(`OBJECTIVES["mlm"].masked`, `.task`, `.tokenizer`, ...) instead of comparing objective names, so a
third objective is one more row. Importing this module is cheap: the model classes are named here and
imported only when asked for.
"""

import importlib
import os
from dataclasses import dataclass

# the recipes and tokenizers shipped in the repository (an editable install or a checkout)
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Objective:
    name: str  # how recipes and tools name it: --objective mlm
    description: str  # "masked language modelling"
    family: str  # the preset family it trains (presets.py)
    model_class: str  # its pre-training model in hfmicro.models
    config_class: str
    auto_class: str  # the transformers Auto class that loads such a model
    architectures: tuple[str, ...]  # class-name endings that mark a model of this objective (config.architectures)
    task: str  # its transformers pipeline
    tokenizer: str  # the shipped tokenizer folder
    tokenizer_model_type: str  # train_bpe.py --model_type that makes a tokenizer for it
    required_token: str  # the tokenizer attribute it cannot do without
    token_ids: tuple[str, ...]  # config fields taken from the tokenizer
    block_prefix: str | None  # tokenizer attribute of the token each packed block starts with
    masked: bool  # labels are masked positions (mlm_probability, static masking apply), else every token
    next_token: bool  # position t predicts token t + 1 (the labels are the inputs, shifted by the loss)
    scored: str  # what its accuracy counts: "masked-token" / "next-token"
    default_preset: str  # when a recipe names none
    script: str  # the recipe script that trains it (recipes/)
    recipe: str  # its default recipe, the CPU one that script runs without --config

    @property
    def model_cls(self):
        return getattr(importlib.import_module("hfmicro.models"), self.model_class)

    @property
    def config_cls(self):
        return getattr(importlib.import_module("hfmicro.models"), self.config_class)

    def check_tokenizer(self, tokenizer, where: str) -> None:
        """Refuse (ValueError naming `where`) a tokenizer without the special token this objective needs."""
        if getattr(tokenizer, self.required_token) is None:
            token = self.required_token.removesuffix("_token")
            raise ValueError(f"tokenizer: {where} has no {token} token, which {self.description} needs; train one "
                             f"with tokenizers/train_bpe.py --model_type {self.tokenizer_model_type}")


OBJECTIVES: dict[str, Objective] = {
    "mlm": Objective(
        name="mlm", description="masked language modelling", family="microbert", model_class="MicroBertForMaskedLM",
        config_class="MicroBertConfig", auto_class="AutoModelForMaskedLM", architectures=("MaskedLM",),
        task="fill-mask", tokenizer=os.path.join(_REPO, "tokenizers", "microbert-8k"), tokenizer_model_type="bert",
        required_token="mask_token", token_ids=("pad_token_id",), block_prefix="cls_token_id", masked=True,
        next_token=False, scored="masked-token", default_preset="microbert-toy",
        script=os.path.join(_REPO, "recipes", "pretrain_mlm.py"), recipe=os.path.join(_REPO, "recipes", "microbert-cpu.yaml"),
    ),
    "clm": Objective(
        name="clm", description="causal language modelling", family="microgpt", model_class="MicroGPTForCausalLM",
        config_class="MicroGPTConfig", auto_class="AutoModelForCausalLM", architectures=("CausalLM", "LMHeadModel"),
        task="text-generation", tokenizer=os.path.join(_REPO, "tokenizers", "microgpt-8k"), tokenizer_model_type="gpt",
        required_token="eos_token", token_ids=("pad_token_id", "bos_token_id", "eos_token_id"), block_prefix=None,
        masked=False, next_token=True, scored="next-token", default_preset="microgpt-toy",
        script=os.path.join(_REPO, "recipes", "pretrain_clm.py"), recipe=os.path.join(_REPO, "recipes", "microgpt-cpu.yaml"),
    ),
}


def objective_named(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]


def objective_of_family(family: str) -> Objective:
    """The objective a preset family is pre-trained with."""
    return next(o for o in OBJECTIVES.values() if o.family == family)


def objective_of_architectures(architectures) -> Objective | None:
    """The objective of a model whose config lists these class names (ours or stock), or None."""
    names = list(architectures or [])
    return next((o for o in OBJECTIVES.values() if any(n.endswith(o.architectures) for n in names)), None)

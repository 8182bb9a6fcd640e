"""What our models are measured against, shared by the bench scripts: the stock twin (what a user builds
from transformers with the same sizes), the rival (the best architecture transformers offers at those
sizes), and a timer of training steps.

Imported by name (`from baselines import ...`): Python puts bench/ on sys.path when it runs a script from it.
"""

import time

# the rival of each objective: the strongest model family transformers ships for it
RIVALS = {"mlm": "modernbert", "clm": "llama"}


def stock_twin(config):
    """The stock transformers model with the same dimensions, otherwise at its defaults."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    from hfmicro.models import MicroBertConfig

    if isinstance(config, MicroBertConfig):
        return BertForMaskedLM(BertConfig(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
            max_position_embeddings=config.max_position_embeddings, pad_token_id=config.pad_token_id))
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=config.vocab_size, n_embd=config.hidden_size, n_layer=config.num_hidden_layers,
        n_head=config.num_attention_heads, n_inner=config.intermediate_size, n_positions=config.max_position_embeddings,
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id))
    model.model_accepts_loss_kwargs = False  # GPT-2's loss under Trainer: the plain mean, as a user's run_clm.py gets
    return model


def glu_width(hidden: int) -> int:
    """A gated MLP's width with the parameters of a 4x plain MLP (3·d·w = 8·d²), rounded up to 64."""
    return -(-8 * hidden // 3 // 64) * 64


def baseline_model(kind: str, objective: str, tokenizer, seq: int, seed: int):
    """What a user builds from transformers at the dimensions of our default recipe's model: the stock twin
    (`BertForMaskedLM` / `GPT2LMHeadModel`, defaults elsewhere), or the rival (`ModernBertForMaskedLM`: RoPE,
    GeGLU, no biases, sparse prediction; `LlamaForCausalLM`: RoPE, SwiGLU, RMSNorm), with a gated MLP as
    wide as keeps the parameter count and a head tied like ours."""
    from transformers import LlamaConfig, LlamaForCausalLM, ModernBertConfig, ModernBertForMaskedLM, set_seed

    from hfmicro.objectives import OBJECTIVES
    from hfmicro.presets import preset_config
    from hfmicro.training.arguments import load_recipe_yaml

    spec = OBJECTIVES[objective]
    values = load_recipe_yaml(spec.recipe)
    ids = {name: getattr(tokenizer, name) for name in spec.token_ids}
    config = preset_config(values["preset"], vocab_size=len(tokenizer), max_position_embeddings=max(seq, 512), **ids)
    dims = {"vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
            "intermediate_size": glu_width(config.hidden_size), "max_position_embeddings": config.max_position_embeddings}
    set_seed(seed)
    if kind == "stock":
        return stock_twin(config)
    if kind == "modernbert":
        return ModernBertForMaskedLM(ModernBertConfig(
            **dims, sparse_prediction=True, pad_token_id=tokenizer.pad_token_id,
            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id))
    return LlamaForCausalLM(LlamaConfig(**dims, num_key_value_heads=config.num_attention_heads,
                                        tie_word_embeddings=True, **ids))


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer:
    """Times training from the end of step `skip` to the end of the last step (the first steps pay for
    start-up, allocation and compilation), with the tokens read in between."""

    def __init__(self, skip: int):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step - timer.step0 in (timer.skip, state.max_steps - timer.step0):
                    _sync()
                    timer.marks.append((time.perf_counter(), state.num_input_tokens_seen))

            def on_train_begin(self, args, state, control, **kwargs):
                timer.step0, timer.marks = state.global_step, []

        self.skip, self.callback, self.step0, self.marks = skip, Callback(), 0, []

    def tokens_per_second(self) -> float:
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0)

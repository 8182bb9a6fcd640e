"""PretrainingTrainer's overrides still meet the Trainer methods they change: each exists in the installed
transformers with the same parameters, and the private ones are still called where the override expects.
(If transformers renamed or moved one, the override would be silently ignored: no guard, no stream position.)
The behaviour of each is tested through real runs elsewhere (test_long_runs, test_training_units)."""

import inspect

import pytest
from transformers import Trainer

from hfmicro.training.trainer import PretrainingTrainer

OVERRIDES = sorted(name for name in vars(PretrainingTrainer) if callable(getattr(Trainer, name, None))
                   and not name.startswith("__"))


def test_the_overrides_are_the_ones_this_file_expects():
    assert OVERRIDES == ["_get_grad_norm", "_save_rng_state", "create_model_card", "get_decay_parameter_names", "log",
                         "training_step"]


@pytest.mark.parametrize("name", OVERRIDES)
def test_each_override_keeps_the_signature_of_the_method_it_changes(name):
    ours, theirs = inspect.signature(getattr(PretrainingTrainer, name)), inspect.signature(getattr(Trainer, name))
    fixed = [p for p in theirs.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    accepted = ours.parameters
    takes_rest = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in accepted.values())
    assert all(p.name in accepted for p in fixed) or takes_rest, (name, theirs, ours)


def caller_of(call: str) -> str:
    """The source of the one Trainer method that makes `call`."""
    sources = [inspect.getsource(f) for f in vars(Trainer).values() if inspect.isfunction(f)]
    callers = [source for source in sources if call in source]
    assert len(callers) == 1, f"{call} is made by {len(callers)} Trainer methods"
    return callers[0]


def test_the_private_methods_are_called_where_the_overrides_expect():
    loop = caller_of("self._get_grad_norm(")
    # the guard: after clipping, before optimizer.step()
    assert loop.index("self._get_grad_norm(") < loop.index("self.optimizer.step()")
    checkpoint = caller_of("self._save_rng_state(")
    # the stream position: written with the RNG state, before trainer_state.json (what makes a checkpoint complete)
    assert checkpoint.index("self._save_rng_state(") < checkpoint.index("save_to_json(")
    restore = inspect.getsource(PretrainingTrainer.restore_finished)
    assert "self._load_from_checkpoint(" in restore and callable(Trainer._load_from_checkpoint)
    assert "self._save(" in inspect.getsource(PretrainingTrainer.save_full_model) and callable(Trainer._save)


def test_weight_decay_applies_to_matrices_only(tmp_path):
    """Decay pulls weights toward 0; a 0-d or 1-d parameter is a gain, bias or mixing scalar, which it should
    not pull (nanoGPT decays only parameters with >= 2 dims). Trainer excludes biases and norms by name and
    type, and decayed the value-residual mixing scalars (value_lambda) toward 0."""
    from hfmicro.models import MicroBertConfig, MicroBertForMaskedLM
    from hfmicro.training.arguments import PretrainingArguments

    config = MicroBertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                             intermediate_size=32, value_residual=True, decoder_bias=True)
    trainer = PretrainingTrainer(model=MicroBertForMaskedLM(config), args=PretrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, weight_decay=0.1, eval_strategy="no",
        load_best_model_at_end=False))
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    everything = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert decayed == {n for n, p in trainer.model.named_parameters() if p.ndim >= 2}
    assert {"model.layers.1.attn.value_lambda", "model.layers.2.attn.value_lambda"} <= everything - decayed
    assert "decoder.bias" not in decayed and "model.embeddings.tok_embeddings.weight" in decayed

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
    assert OVERRIDES == ["_get_grad_norm", "_save_rng_state", "create_model_card", "log", "training_step"]


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

"""The repository keeps its promises: CI runs the README's test command; no package shadows a library."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    commands = [line.strip() for line in readme.splitlines() if "python -m pytest" in line and line.startswith("pip ")]
    assert len(commands) == 1, commands
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert commands[0] in ci.splitlines()


def test_tokenizers_folder_is_not_a_package():
    assert not os.path.exists(os.path.join(ROOT, "tokenizers", "__init__.py"))  # it would shadow `tokenizers`


def test_the_model_card_names_the_transformers_floor_that_setup_requires():
    from hfmicro.training.card import TRANSFORMERS_FLOOR

    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        assert f'"transformers>={TRANSFORMERS_FLOOR},<6"' in f.read()

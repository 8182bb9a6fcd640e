"""The repository keeps its promises: CI runs the README's test command; no package shadows a library."""

import os
import re

from helpers import ROOT


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


def _install_requires() -> set[str]:
    import ast

    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    requires = next(k.value for k in call.keywords if k.arg == "install_requires")
    names = [ast.literal_eval(e).split(";")[0] for e in requires.elts]
    return {re.split(r"[<>=!~\[ ]", n, maxsplit=1)[0].lower().replace("_", "-") for n in names}


def test_every_package_the_library_imports_is_declared_in_setup():
    """A user's `pip install` gets what hfmicro imports (psutil was imported by the data pipeline and the
    run lock without being declared)."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    provided = packages_distributions()
    imported = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "hfmicro")):
        for name in files:
            if name.endswith(".py"):
                tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and not node.level:
                        imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"hfmicro"}
    declared = _install_requires()
    missing = {m: provided.get(m) for m in third_party
               if not {d.lower().replace("_", "-") for d in provided.get(m, [m])} & declared}
    assert not missing, f"imported by hfmicro but not in setup.py's install_requires: {missing}"

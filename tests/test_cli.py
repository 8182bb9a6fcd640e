"""The `hfmicro` command: fast help, and each verb on tiny artifacts made here."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate")


def modules_after(code: str) -> set[str]:
    """The heavy packages a fresh interpreter has imported after running `code`."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1])) & set(HEAVY)


def test_import_hfmicro_cli_imports_no_heavy_package():
    assert modules_after("import hfmicro.cli") == set()


def test_every_help_answers_without_importing_torch_or_transformers():
    from hfmicro.cli import VERB_MODULES, build_parser

    verbs = [name for name in build_parser()._subparsers._group_actions[0].choices]
    assert len(verbs) == len(VERB_MODULES) or len(verbs) >= len(VERB_MODULES)
    for argv in [[]] + [[verb] for verb in verbs]:
        code = ("from hfmicro.cli import main\ntry:\n    main(" + repr([*argv, "--help"]) + ")\n"
                "except SystemExit as e:\n    assert e.code == 0, e.code")
        assert modules_after(code) == set(), argv


def test_the_models_are_registered_with_the_auto_classes_when_used():
    assert modules_after("import hfmicro") == set()  # importing the package alone is cheap
    code = ("from hfmicro import MicroBertConfig\nfrom transformers import AutoConfig\n"
            "assert type(AutoConfig.for_model('microbert')) is MicroBertConfig")
    assert "transformers" in modules_after(code)

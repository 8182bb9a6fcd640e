"""The `builtin` corpus: English prose that ships with Python itself, so the default run needs no download.

Documents are the pydoc topic pages (the language reference help) and the docstrings of a fixed list
of standard-library modules, reduced to their prose paragraphs: doctest sessions, grammar
productions and code-looking paragraphs are dropped, whitespace inside a paragraph is collapsed and
paragraphs are joined with a blank line. Exact duplicates (inherited docstrings) are kept once.
The corpus depends only on the Python version (≈ 1.08 M characters on CPython 3.11).
"""

import functools
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import warnings

# Packages whose submodules are walked as well; the rest of the standard library is imported by
# top-level name. Excluded: modules with import-time side effects or that need a display
# (antigravity opens a browser, `this` prints, tkinter/turtle/idlelib need Tk, readline and
# rlcompleter change the terminal), test suites, and the data packages themselves.
_EXCLUDED = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "readline", "rlcompleter",
    "test", "tests", "idle_test", "lib2to3", "ensurepip", "distutils", "pydoc_data", "encodings",
    "msilib", "winreg", "winsound", "msvcrt", "nt", "__main__",
}
_CODE = re.compile(
    r"::="  # grammar productions in the language reference
    r"|^\s*(>>>|\.\.\.|\$ )"  # interactive sessions and shell commands
    r"|[{}\[\]=]\s*$"  # lines ending like code
    r"|^\s*(def|class|import|from|return|if|for|while|print)\b.*[:()]\s*$",
    re.M,
)
MIN_DOCUMENT_CHARS = 200  # shorter docstrings are one-liners like "Return self+value."
VALIDATION_PER_MILLE = 50  # fixed 5 % validation split, chosen by a hash of each document


def _prose(text: str) -> str:
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text):
        if _CODE.search(paragraph):
            continue
        flat = " ".join(paragraph.split())
        letters = sum(c.isalpha() or c == " " for c in flat)
        if len(flat) >= 40 and flat.count(" ") >= 5 and letters >= 0.85 * len(flat):
            paragraphs.append(flat)
    return "\n\n".join(paragraphs)


def _stdlib_modules() -> list:
    names = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _EXCLUDED:
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # platform-specific modules (e.g. curses without ncurses): skip them
            continue
        names.append(name)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
            if any(part.startswith("_") or part in _EXCLUDED for part in info.name.split(".")):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:
                continue
            names.append(info.name)
    return [sys.modules[name] for name in sorted(names)]


def _from_stdlib(obj) -> bool:
    module = getattr(obj, "__module__", None)
    return module is None or module.split(".")[0] in sys.stdlib_module_names


def _members(module) -> list:
    """Public attributes as the standard library defines them, whatever ran before: a hook that a
    tool replaced (pytest sets sys.unraisablehook and threading.excepthook) counts by its original,
    kept by the module as `__name__`; anything else must be the object its defining stdlib module
    exports under that name (not a method another library attached, like transformers'
    `Logger.warning_once`)."""

    def original(mod, key):
        return vars(mod).get(f"__{key}__", vars(mod).get(key))

    members = []
    for key in sorted(vars(module)):
        value = original(module, key)
        home = sys.modules.get(getattr(value, "__module__", None) or module.__name__)
        if not key.startswith("_") and home is not None and _from_stdlib(value) and original(home, key) is value:
            members.append(value)
    return members


def _docstrings(module) -> list[str]:
    members = _members(module)
    methods = [
        value
        for member in members
        if inspect.isclass(member)
        for key, value in sorted(vars(member).items())
        if not key.startswith("_") and _from_stdlib(value)
    ]
    docs = []
    for obj in [module, *members, *methods]:
        if inspect.isclass(obj) or inspect.isroutine(obj) or obj is module:
            doc = inspect.getdoc(obj)
            if doc:
                docs.append(doc)
    return docs


def generate_documents() -> tuple[str, ...]:
    """All documents of the built-in corpus, in a fixed order (topics by name, then modules by name),
    made from this Python's own files: it imports the whole standard library (seconds)."""
    from pydoc_data.topics import topics

    raw = [topics[key] for key in sorted(topics)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing and reading deprecated modules (cgi, typing.io) warns
        for module in _stdlib_modules():
            raw.extend(_docstrings(module))
    seen, documents = set(), []
    for text in raw:
        document = _prose(text)
        if len(document) >= MIN_DOCUMENT_CHARS and document not in seen:
            seen.add(document)
            documents.append(document)
    return tuple(documents)


def _stored_path() -> str:
    """Where generate_documents()' result is kept for this interpreter and this file's code."""
    from .cache import cache_root

    with open(__file__, "rb") as f:
        code = f.read()
    key = hashlib.sha256(repr((sys.version, sys.platform, sys.executable)).encode("utf-8") + code).hexdigest()[:16]
    return os.path.join(cache_root(), "builtin", f"corpus-{key}.json")


@functools.cache
def builtin_documents() -> tuple[str, ...]:
    """generate_documents(), made once per interpreter and then read from the cache (every launch of a
    builtin run needs the text: its fingerprint, the demo sentences, the probe set)."""
    from ..atomic import write_json_atomic

    path = _stored_path()
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(json.load(f))
    except (OSError, ValueError):
        pass
    documents = generate_documents()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path, list(documents), indent=None)
    except OSError:
        pass  # an unwritable cache: generated again next time
    return documents


def fingerprint_of(documents) -> str:
    digest = hashlib.sha256()
    for document in documents:
        digest.update(document.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def builtin_fingerprint() -> str:
    """Changes exactly when the corpus text does (another Python version may change it)."""
    return fingerprint_of(builtin_documents())


def in_hash_validation(text: str, per_mille: float) -> bool:
    """Deterministic split by document content: the same text always lands on the same side,
    so exact duplicates never leak between train and validation."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") % 1000
    return bucket < per_mille

"""On-disk cache of packed datasets, and the `hfmicro cache info|usage|clear` verb.

Location: $HFMICRO_CACHE, else $HF_HOME/hfmicro, else ~/.cache/huggingface/hfmicro (the Hugging Face
convention). Each entry is a `save_to_disk` folder named by a hash of everything that changes its
content, plus `hfmicro_entry.json` (what it was built from, and its summary). An entry is built in a
`.<key>.tmp-*` folder and renamed into place when complete, so a killed run never leaves a half-written
entry that a later run would load; `cache clear` also removes such leftovers.
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

from ..atomic import StagedFolder, is_staging_name, write_json_atomic

ENTRY_FILE = "hfmicro_entry.json"


def cache_root() -> str:
    if os.environ.get("HFMICRO_CACHE"):
        return os.path.expanduser(os.environ["HFMICRO_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(os.path.expanduser(hf_home), "hfmicro")


def packed_dir() -> str:
    return os.path.join(cache_root(), "packed")


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def tokenizer_fingerprint(tokenizer) -> str:
    """Changes when the vocabulary, merges, normalisation or special tokens change."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = [type(tokenizer).__name__, tokenizer.all_special_tokens, tokenizer.all_special_ids]
    return hashlib.sha256((content + json.dumps(specials)).encode("utf-8")).hexdigest()[:16]


def entry_path(key: str) -> str:
    return os.path.join(packed_dir(), key)


def read_entry(key: str) -> dict | None:
    """The metadata of a complete entry, or None when there is none."""
    try:
        with open(os.path.join(entry_path(key), ENTRY_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def building_entry(key: str) -> StagedFolder:
    """The folder an entry is written into (save_to_disk, then its metadata); it becomes the entry for
    `key` when the `with` block ends without error, and is removed when it raises. A concurrent build of
    the same entry that finished first is kept."""
    return StagedFolder(entry_path(key))


def write_entry_metadata(folder: str, metadata: dict) -> None:
    write_json_atomic(os.path.join(folder, ENTRY_FILE), metadata, indent=2)


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: str
    bytes: int
    metadata: dict | None  # None for an incomplete build left by a killed run

    def describe(self) -> str:
        size = f"{self.bytes / 1e6:9.1f} MB"
        if self.metadata is None:
            return f"{self.key:<32} {size}  incomplete build (removed by `hfmicro cache clear`)"
        m, splits = self.metadata, self.metadata.get("summary", {})
        blocks = ", ".join(f"{name} {s['blocks']:,} blocks" for name, s in splits.items())
        return (
            f"{self.key:<32} {size}  {m['dataset']} | {m['inputs']['objective']} x {m['inputs']['max_seq_length']} "
            f"| tokenizer {m['inputs']['tokenizer']} | {blocks} | {m['created']}"
        )


def list_entries() -> list[CacheEntry]:
    root = packed_dir()
    if not os.path.isdir(root):
        return []
    entries = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            metadata = None if is_staging_name(name) else read_entry(name)
            entries.append(CacheEntry(name, path, _size(path), metadata))
    return entries


def clear(keys: list[str] | None = None) -> list[CacheEntry]:
    """Remove the given entries (all of them when `keys` is empty); returns what was removed."""
    removed = [e for e in list_entries() if not keys or e.key in keys]
    for entry in removed:
        shutil.rmtree(entry.path)
    return removed


def _cache_command(args) -> int:
    if args.action == "clear":
        removed = clear(args.keys)
        if args.keys and len(removed) < len(args.keys):
            missing = sorted(set(args.keys) - {e.key for e in removed})
            from ..errors import print_error

            return print_error(f"no cache entry {', '.join(missing)} (see `hfmicro cache info`)")
        print(f"removed {len(removed)} entries ({sum(e.bytes for e in removed) / 1e6:.1f} MB) from {packed_dir()}")
        return 0
    entries = list_entries()
    total = sum(e.bytes for e in entries)
    if args.action == "info":
        print(f"cache: {packed_dir()}  (set HFMICRO_CACHE to move it)")
        for entry in entries:
            print(entry.describe())
    print(f"{len(entries)} entries, {total / 1e6:.1f} MB")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list or remove cached packed datasets",
        description="Packed datasets are cached under $HFMICRO_CACHE, else $HF_HOME/hfmicro, "
        "else ~/.cache/huggingface/hfmicro.",
    )
    parser.add_argument(
        "action", choices=["info", "usage", "clear"], help="info: list entries; usage: total size; clear: remove"
    )
    parser.add_argument("keys", nargs="*", help="for clear: only these entries (default: all)")
    parser.set_defaults(func=_cache_command)

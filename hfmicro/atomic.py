"""Writes that a kill cannot leave half done: everything is written beside its destination (same file
system) and renamed into place, so a reader sees the old state or the new one.

- `write_json_atomic`: one JSON file (training history, run settings, results, stream positions).
- `StagedFolder`: a whole folder that appears complete or not at all (a tokenizer, a packed-data cache
  entry).
- `move_files_into`: staged files moved into a folder that holds other things (a run's output_dir),
  one rename each, a chosen file last, so its presence proves the others arrived.
"""

import json
import os
import shutil
import uuid

STAGING_INFIX = ".tmp-"  # staged folders are named .<target name>.tmp-<random>


def write_json_atomic(path: str, payload, indent: int | None = 1) -> None:
    """Write `payload` as JSON to a temporary file beside `path`, then rename it over `path`."""
    tmp = f"{path}{STAGING_INFIX}{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=indent, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def is_staging_name(name: str) -> bool:
    """A folder left by a StagedFolder whose process died before it finished."""
    return name.startswith(".") and STAGING_INFIX in name


class StagedFolder:
    """An empty folder created beside `target` now (an unwritable destination fails before any work).
    Used as a context manager, it becomes `target` when the block ends without error and is removed
    when it raises. An existing `target` folder is swapped out when `replace` is set; otherwise a
    `target` that appeared meanwhile (a concurrent writer that finished first) is kept and this copy is
    dropped."""

    def __init__(self, target: str, replace: bool = False):
        self.target = os.path.abspath(target)
        self.replace = replace
        parent, name = os.path.split(self.target)
        os.makedirs(parent, exist_ok=True)
        # os.mkdir, not tempfile.mkdtemp: mkdtemp's folder is private (0700) and would stay so after the rename
        self.path = os.path.join(parent, f".{name}{STAGING_INFIX}{uuid.uuid4().hex[:8]}")
        os.mkdir(self.path)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)  # gone already after a commit

    def commit(self) -> None:
        old = None
        if self.replace and os.path.isdir(self.target):  # two renames, then the old copy is dropped
            old = f"{self.path}-old"
            os.rename(self.target, old)
        try:
            os.rename(self.path, self.target)
        except OSError:
            if self.replace or not os.path.isdir(self.target):
                raise  # not a concurrent writer that finished first: a real failure
        if old:
            shutil.rmtree(old)


def move_files_into(staging: str, folder: str, last: str) -> None:
    """Move every entry of `staging` into `folder` (each an atomic rename, replacing what is there), the
    entry named `last` at the end; then remove `staging`."""
    for name in sorted(os.listdir(staging), key=lambda n: n == last):
        target = os.path.join(folder, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(os.path.join(staging, name), target)
    os.rmdir(staging)

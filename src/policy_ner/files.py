"""Atomic writes: a reader, or a crash, never sees a half-written artifact.

The scratch files and folders behind them are created private (0600, 0700) by `tempfile`; what they
become gets the modes a plain `open` or `mkdir` would give under the process's umask, so colleagues
sharing `models/` can read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | Path, value: Any) -> Path:
    """Strict JSON: a NaN or infinity is an error naming the file, never written as invalid JSON."""
    try:
        text = json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not written, {exc}") from None
    return atomic_write_text(path, text + "\n")


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; it becomes `final` only if the block succeeds.

    An existing `final` is an error: versions are immutable once written.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists; choose another version name")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield scratch
        mask = current_umask()
        for folder, _, names in os.walk(scratch):
            os.chmod(folder, 0o777 & ~mask)
            for name in names:  # files written by other libraries (save_pretrained) have their own modes
                file = Path(folder) / name
                os.chmod(file, (file.stat().st_mode | 0o666) & ~mask & 0o777)
        os.rename(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

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
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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


PARTIAL_SUFFIX = ".partial"
_OWNER = re.compile(rf"\.(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)\.[^.]+{re.escape(PARTIAL_SUFFIX)}$")


def owner_tag() -> str:
    """This process on this machine, as scratch folders and reservations record their writer."""
    return f"{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}-{os.getpid()}"


def owner_is_gone(tag: str) -> bool:
    """True when `tag` (`owner_tag()` of some process) names a process of this machine that has ended;
    False when it runs, or is on another machine (whose processes cannot be checked from here)."""
    host, _, pid = tag.partition("-")
    if host != owner_tag().partition("-")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


@dataclass(frozen=True)
class PartialFolder:
    path: Path
    owner: str | None
    """`owner_tag()` of the writer, None for a folder of another naming."""
    stale: bool
    """Its writer has ended without finishing it (killed): safe to remove."""


def partial_folders(parent: str | Path) -> list[PartialFolder]:
    """The scratch folders `atomic_directory` left in `parent`, with whether their writer is gone."""
    found = []
    for path in sorted(Path(parent).glob(f".*{PARTIAL_SUFFIX}")):
        if path.is_dir():
            match = _OWNER.search(path.name)
            owner = f"{match['host']}-{match['pid']}" if match else None
            found.append(PartialFolder(path, owner, owner is not None and owner_is_gone(owner)))
    return found


def remove_stale_partials(parent: str | Path) -> list[PartialFolder]:
    """Remove the scratch folders of killed writers in `parent`; returns what was removed."""
    removed = [folder for folder in partial_folders(parent) if folder.stale]
    for folder in removed:
        shutil.rmtree(folder.path, ignore_errors=True)
    return removed


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a scratch folder beside `final`; it becomes `final` only if the block succeeds.

    An existing `final` is an error: versions are immutable once written.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists; choose another version name")
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.{owner_tag()}.", suffix=PARTIAL_SUFFIX, dir=final.parent))
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


CACHE_ENV = "POLICY_NER_CACHE"


def user_cache_dir(name: str) -> Path:
    """`$POLICY_NER_CACHE/<name>`, else `~/.cache/policy-ner/<name>`, created private (0700): caches are
    read back as trusted data, so they live per user, never in a shared /tmp another user could write."""
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "policy-ner") / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

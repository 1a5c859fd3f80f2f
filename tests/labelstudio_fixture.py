"""One real Label Studio server per test session, started in a background thread.

The database migrations of a first start take 30-70 s, so they run once (`label-studio init`) into a
data folder cached under `.labelstudio/cache/`; each session copies it into a temporary folder and
starts from there in a few seconds. The cached folder already holds the test user and its token.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from policy_ner.labelstudio.server import (
    LABEL_STUDIO_VERSION,
    LabelStudioServer,
    LabelStudioServerError,
    ServerUser,
    executable,
    free_port,
    initialise_data_dir,
)

ROOT = Path(__file__).resolve().parent.parent
SKIP_VARIABLE = "POLICY_NER_SKIP_LABEL_STUDIO"
VENV = ROOT / ".labelstudio" / "venv"
USER = ServerUser(
    email="tests@policy-ner.invalid", password="policy-ner-tests", token="policy-ner-test-token-5f0c2a9e41d7b8"
)
TEMPLATE = (
    ROOT
    / ".labelstudio"
    / "cache"
    / f"tests-{LABEL_STUDIO_VERSION}-{hashlib.sha256(repr(USER).encode()).hexdigest()[:8]}"
)


@dataclass(frozen=True)
class RunningLabelStudio:
    url: str
    api_key: str
    server: LabelStudioServer
    start_seconds: float
    """From `label-studio start` to the first healthy answer."""
    template_seconds: float | None
    """Time spent migrating the cached data folder in this session (None: it was already there)."""


class BackgroundLabelStudio:
    KEY = pytest.StashKey["BackgroundLabelStudio"]()

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="policy-ner-labelstudio-"))
        self._server: LabelStudioServer | None = None
        self._result: RunningLabelStudio | None = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="label-studio", daemon=True)

    @classmethod
    def begin(cls) -> BackgroundLabelStudio:
        background = cls()
        background._thread.start()
        return background

    def _run(self) -> None:
        try:
            executable(VENV)
            template_seconds = None
            if not TEMPLATE.exists():
                started = time.monotonic()
                try:
                    initialise_data_dir(TEMPLATE, USER, venv=VENV)
                except FileExistsError:  # another session made it meanwhile
                    pass
                template_seconds = time.monotonic() - started
            data = self.folder / "data"
            shutil.copytree(TEMPLATE, data)
            home = self.folder / "home"
            home.mkdir()
            if self._stopping.is_set():
                return
            self._server = LabelStudioServer.start(data, free_port(), venv=VENV, user=USER, home=home)
            seconds = self._server.wait_until_ready()
            self._result = RunningLabelStudio(self._server.url, USER.token, self._server, seconds, template_seconds)
        except BaseException as exc:  # reported by `result()` in the test that needs the server
            self._error = exc

    def result(self, timeout: float = 900) -> RunningLabelStudio:
        self._thread.join(timeout)
        if self._error is not None:
            hint = (
                f"\n(set {SKIP_VARIABLE}=1 to skip the Label Studio tests)"
                if isinstance(self._error, LabelStudioServerError)
                else ""
            )
            pytest.fail(f"Label Studio did not start: {self._error}{hint}", pytrace=False)
        if self._result is None:
            pytest.fail(f"Label Studio was not ready after {timeout:.0f} s", pytrace=False)
        return self._result

    def summary(self) -> str:
        if self._result is None:
            return ""
        migrated = (
            f"migrated the cached data folder in {self._result.template_seconds:.1f} s, "
            if self._result.template_seconds is not None
            else ""
        )
        return (
            f"Label Studio {LABEL_STUDIO_VERSION}: {migrated}server ready {self._result.start_seconds:.1f} s "
            f"after its start, at {self._result.url}"
        )

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(60)
        if self._server is not None:
            self._server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

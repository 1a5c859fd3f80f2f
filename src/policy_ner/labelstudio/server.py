"""A local Label Studio server: `label-studio` from its own virtual environment (its pins clash with
ours), bound to 127.0.0.1, SQLite data in a folder we choose, no calls out (no Sentry, no version
check, no analytics). `make labelstudio` runs `main`; the integration tests start one per session.

Nothing here imports Label Studio: it lives in the other environment and is run as a program.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_directory

LABEL_STUDIO_VERSION = "1.23.2"
DEFAULT_VENV = Path(".labelstudio/venv")
HOST = "127.0.0.1"

# Label Studio reads each setting X from LABEL_STUDIO_X, HEARTEX_X or bare X, in that order. Bare
# names such as USERNAME, HOST or PORT are common in shells and would silently change the server, so
# only the LABEL_STUDIO_ spelling of the user settings passes through, and none of the server settings.
_SERVER_SETTINGS = frozenset({"HOST", "PORT", "DEBUG", "DATABASE_NAME", "BASE_DATA_DIR", "DJANGO_DB"})
_USER_SETTINGS = frozenset({"USERNAME", "PASSWORD", "USER_TOKEN", "ENABLE_LEGACY_API_TOKEN"})
_FIXED_SETTINGS = {
    "LABEL_STUDIO_DJANGO_DB": "sqlite",
    "LABEL_STUDIO_DEBUG": "false",
    "LABEL_STUDIO_SENTRY_DSN": "",
    "LABEL_STUDIO_FRONTEND_SENTRY_DSN": "",
    "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
    "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
    "LABEL_STUDIO_FEATURE_FLAGS_OFFLINE": "true",
}
_READY_LINE = "Starting development server at http://{host}:{port}/"


class LabelStudioServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerUser:
    """The first user, created with the organisation (later changes to these settings do nothing)."""

    email: str
    password: str
    token: str
    """Legacy API token (`Authorization: Token ...`), enabled for the organisation."""


def server_environment(
    data_dir: Path, *, user: ServerUser | None = None, home: Path | None = None, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The server's environment: `base` without anything that would move its data, port or host, plus
    the fixed settings; `user` (for tests) replaces any user settings in `base`."""
    env = {key: value for key, value in base.items() if _passes_through(key, with_user=user is not None)}
    env.update(_FIXED_SETTINGS, LABEL_STUDIO_BASE_DATA_DIR=str(Path(data_dir).resolve()))
    if user is not None:
        env.update(
            LABEL_STUDIO_USERNAME=user.email,
            LABEL_STUDIO_PASSWORD=user.password,
            LABEL_STUDIO_USER_TOKEN=user.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        )
    if home is not None:  # label-studio writes ~/.config/label-studio/user_id
        env["HOME"] = str(home)
    return env


def _passes_through(key: str, *, with_user: bool) -> bool:
    name = key.removeprefix("LABEL_STUDIO_").removeprefix("HEARTEX_")
    if name in _SERVER_SETTINGS:
        return False
    if name in _USER_SETTINGS:
        return not with_user and key.startswith("LABEL_STUDIO_")
    return True


def executable(venv: Path = DEFAULT_VENV) -> Path:
    """`label-studio` in `venv`, checked to be the pinned version."""
    program = Path(venv) / "bin" / "label-studio"
    found = sorted(Path(venv).glob("lib/python*/site-packages/label_studio-*.dist-info"))
    version = found[-1].name[len("label_studio-") : -len(".dist-info")] if found else None
    if not program.is_file() or version is None:
        raise LabelStudioServerError(
            f"Label Studio is not installed in {venv}: run `make labelstudio-install` (part of `make setup`)"
        )
    if version != LABEL_STUDIO_VERSION:
        raise LabelStudioServerError(
            f"{venv} holds label-studio {version}, not the pinned {LABEL_STUDIO_VERSION}: "
            f"remove it and run `make labelstudio-install`"
        )
    return program


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def initialise_data_dir(data_dir: Path, user: ServerUser, *, venv: Path = DEFAULT_VENV, timeout: float = 600) -> Path:
    """Create a migrated SQLite data folder holding `user` (`label-studio init`: the 30-70 s of
    migrations a cold start would spend), to copy into fresh data folders. Appears only once complete."""
    program = executable(venv)
    with atomic_directory(data_dir) as scratch:
        home = scratch / "home"
        home.mkdir()
        log = scratch / "init.log"
        with open(log, "wb") as out:
            done = subprocess.run(
                [str(program), "init", "--quiet", "--no-browser"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_environment(scratch, user=user, home=home),
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise LabelStudioServerError(f"`label-studio init` failed ({done.returncode}):\n{_tail(log)}")
        shutil.rmtree(home)
    return Path(data_dir)


@dataclass
class LabelStudioServer:
    process: subprocess.Popen
    port: int
    data_dir: Path
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int,
        *,
        venv: Path = DEFAULT_VENV,
        user: ServerUser | None = None,
        home: Path | None = None,
        log: Path | None = None,
    ) -> LabelStudioServer:
        """Start in the background; `wait_until_ready` blocks until it answers."""
        program = executable(venv)
        # Label Studio silently moves to the next port when this one is taken.
        if not port_is_free(port):
            raise LabelStudioServerError(f"port {port} on {HOST} is in use: choose another")
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        log = log or data_dir / "server.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [str(program), "start", "--no-browser", "--internal-host", HOST, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=server_environment(data_dir, user=user, home=home),
            )
        return cls(process, port, data_dir, log)

    def wait_until_ready(self, timeout: float = 300) -> float:
        """Seconds from start until `GET /health` answered on our port."""
        ready_line = _READY_LINE.format(host=HOST, port=self.port)
        while True:
            if self.process.poll() is not None:
                raise LabelStudioServerError(
                    f"Label Studio exited ({self.process.returncode}) before it was ready:\n{_tail(self.log)}"
                )
            if ready_line in self.log.read_text(encoding="utf-8", errors="replace") and self._healthy():
                return time.monotonic() - self.started
            if time.monotonic() - self.started > timeout:
                self.stop()
                raise LabelStudioServerError(f"Label Studio was not ready after {timeout:.0f} s:\n{_tail(self.log)}")
            time.sleep(0.25)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its children
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make labelstudio", description="Run a local Label Studio for annotators.")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--data-dir", type=Path, default=Path(".labelstudio/data"))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    # The server runs in its own session, so stop it here however this program is told to end.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    server = None
    try:
        server = LabelStudioServer.start(args.data_dir, args.port, venv=args.venv)
        print(
            f"starting Label Studio {LABEL_STUDIO_VERSION} (data in {args.data_dir}, log in {server.log}) ...",
            flush=True,
        )
        seconds = server.wait_until_ready()
        print(
            f"""Label Studio is ready after {seconds:.0f} s: {server.url}
  first time: open it, sign up (the account stays in {args.data_dir}), then avatar (top right) ->
  Account & Settings -> Personal Access Token -> Create, and copy the token:
    export LABEL_STUDIO_API_KEY=<the token>    # never put it in a file in the project
    policy-ner ls push --url {server.url} --project NAME --model models/<version> data/raw/...
Ctrl-C stops the server.""",
            flush=True,
        )
        return server.process.wait()
    except LabelStudioServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

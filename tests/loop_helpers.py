"""Helpers for the closed-loop tests: the board service as a real process, archives."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]


class Service:
    """``codesign board serve --sim`` on 127.0.0.1 in a subprocess."""

    def __init__(self, data: Path, token_file: Path, port: int = 0, seed: int = 0,
                 extra: tuple[str, ...] = ()):
        self.data, self.token_file = data, token_file
        self.port = port
        self.seed = seed
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> "Service":
        cmd = CODESIGN + ["board", "serve", "--sim", "--board-seed", str(self.seed),
                          "--host", "127.0.0.1", "--port", str(self.port),
                          "--token-file", str(self.token_file), "--data-dir", str(self.data),
                          *self.extra]
        self.log = open(self.data.parent / f"service-{self.data.name}.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"the service exited: {self.proc.wait()}")
            if line.startswith("serving on "):
                self.url = line.split()[-1]
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
        raise RuntimeError("the service did not start")

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def kill(self, sig: str = "KILL") -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if sig == "KILL" else self.proc.terminate()
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def package_tgz(pkg: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(pkg, arcname=".")
        for ti, data in extra:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def post(url: str, body: bytes, token: str | None, ctype: str) -> tuple[int, bytes]:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upload(url: str, data: bytes, token: str | None) -> tuple[int, bytes]:
    boundary = "testboundary1234"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"package\"; "
            f"filename=\"p.tgz\"\r\nContent-Type: application/gzip\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    return post(url + "/api/v1/designs", body, token,
                f"multipart/form-data; boundary={boundary}")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def env_ok() -> bool:
    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
    except ImportError:
        return False
    return True


def staging_left(data: Path) -> list[str]:
    d = data / "designs"
    return [p.name for p in d.iterdir() if p.name.startswith(".")] if d.is_dir() else []


os.environ.setdefault("PYTHONUNBUFFERED", "1")

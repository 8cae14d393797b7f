"""The host's side of the board service: one board (:class:`BoardClient`), or a farm.

:class:`BoardClient` uploads a package, queues a benchmark, waits for its QoS record and
follows the QoS stream. Network trouble is expected, not exceptional: every call retries
a lost connection until its deadline, and then raises :class:`BoardUnavailable` (one line
naming the board and how long it stayed silent) instead of hanging. The stream reconnects
with ``Last-Event-ID``, so the service replays what the client missed; events are
de-duplicated by their id, so nothing is counted twice. A service that restarted (a new
boot id) replays its new boot from the start; its unfinished jobs run again under the
same ids, so :meth:`BoardClient.wait` simply carries on.

:class:`BoardFarmSource` is a :class:`host_search.measure.QoSSource` over several boards:
each candidate goes to a free board whose overlay runs it (a simulated board loads any
overlay; a real one only the overlay it has), as a random-weight package (timing does not
depend on weight values). A board that disappears hands its candidate to another.
Only the standard library is used (``urllib``), so the client runs anywhere.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import secrets
import stat
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from pynq_codesign.design import Design
from pynq_codesign.errors import CodesignError
from pynq_codesign.qos import QoSRecord

#: Seconds one HTTP request may take before it counts as lost.
REQUEST_TIMEOUT_S = 15.0
#: Default seconds a board may stay silent before it counts as gone.
BOARD_TIMEOUT_S = 60.0
#: Frames per measurement a farm asks for (after WARMUP frames).
FARM_FRAMES = 16
FARM_WARMUP = 2


class BoardError(CodesignError):
    """The board refused a request or a job failed; the message is the board's."""


class BoardUnavailable(BoardError):
    """The board did not answer within the deadline."""


@dataclass(frozen=True)
class StreamEvent:
    """One event of the QoS stream."""

    id: str
    kind: str
    data: dict

    @property
    def boot(self) -> str:
        return self.id.rpartition("-")[0]

    @property
    def seq(self) -> int:
        return int(self.id.rpartition("-")[2] or 0)


def read_token(token_file: str | os.PathLike) -> str:
    p = Path(token_file)
    try:
        tok = p.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise BoardError(f"--token-file {p}: {e.strerror or e}; the board service writes it "
                         "at its first start (copy it from the board)") from None
    if stat.S_IMODE(p.stat().st_mode) & 0o077:
        raise BoardError(f"--token-file {p}: readable by others; chmod 600 {p}")
    if not tok:
        raise BoardError(f"--token-file {p}: empty")
    return tok


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "codesign" + secrets.token_hex(12)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/gzip\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def pack_package(package_dir: str | os.PathLike) -> bytes:
    """The package folder as tar.gz bytes (members relative to the package's top)."""
    root = Path(package_dir)
    if not (root / "manifest.json").is_file():
        raise BoardError(f"{root}: not a deployment package (no manifest.json)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                tar.add(p, arcname=p.relative_to(root).as_posix(), recursive=False)
    return buf.getvalue()


class BoardClient:
    """One board service at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, token: str | None = None,
                 token_file: str | os.PathLike | None = None,
                 timeout: float = BOARD_TIMEOUT_S):
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise BoardError(f"board URL {url!r}: give http://HOST:PORT")
        self.token = token if token is not None else (read_token(token_file) if token_file
                                                      else None)
        self.timeout = float(timeout)
        self._uploaded: dict[str, str] = {}

    # --- plumbing ----------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None,
                 ctype: str | None = None, auth: bool = False,
                 deadline: float | None = None) -> dict:
        """One JSON request, retried on a lost connection until ``deadline``."""
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        headers = {"Accept": "application/json"}
        if ctype:
            headers["Content-Type"] = ctype
        if auth:
            if not self.token:
                raise BoardError(f"{self.url}: this request needs the board's token "
                                 "(--token-file)")
            headers["Authorization"] = f"Bearer {self.token}"
        delay, last = 0.2, ""
        while True:
            req = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=headers)
            left = deadline - time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=max(0.5, min(REQUEST_TIMEOUT_S,
                                                                      left))) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as e:
                try:
                    msg = json.loads(e.read()).get("error", e.reason)
                except (ValueError, AttributeError, OSError):
                    msg = e.reason
                if e.code >= 500 or e.code == 429:
                    last = f"HTTP {e.code}: {msg}"
                else:
                    raise BoardError(f"{self.url}{path}: HTTP {e.code}: {msg}") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = str(getattr(e, "reason", e))
            if time.monotonic() + delay > deadline:
                raise BoardUnavailable(f"the board at {self.url} did not answer "
                                       f"{method} {path} for {self.timeout:.0f} s ({last})")
            time.sleep(delay)
            delay = min(delay * 1.6, 2.0)

    # --- the API -----------------------------------------------------------------------
    def info(self) -> dict:
        return self._request("GET", "/api/v1/board")

    def upload(self, package_dir: str | os.PathLike) -> str:
        """Upload a package folder; its design id on the board (once per package)."""
        data = pack_package(package_dir)
        # the manifest signs every file: the same manifest is the same package
        key = hashlib.sha256((Path(package_dir) / "manifest.json").read_bytes()).hexdigest()
        if key in self._uploaded:
            return self._uploaded[key]
        body, ctype = _multipart("package", Path(package_dir).name + ".tar.gz", data)
        r = self._request("POST", "/api/v1/designs", body, ctype, auth=True)
        self._uploaded[key] = r["id"]
        return r["id"]

    def bench(self, design_id: str, frames: int = 50, warmup: int = 2,
              images: str | None = None) -> str:
        """Queue a benchmark of an uploaded design; the job id."""
        body = json.dumps({"frames": frames, "warmup": warmup, "images": images}).encode()
        r = self._request("POST", f"/api/v1/designs/{design_id}/bench", body,
                          "application/json", auth=True)
        return r["id"]

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/api/v1/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float = 600.0) -> QoSRecord:
        """The job's QoS record once it is done. A board silent for longer than the
        client's ``timeout`` raises :class:`BoardUnavailable`; a job still queued or
        running after ``timeout`` seconds raises :class:`BoardError`."""
        end = time.monotonic() + timeout
        delay = 0.1
        while True:
            j = self._request("GET", f"/api/v1/jobs/{job_id}",
                              deadline=min(end, time.monotonic() + self.timeout))
            if j["state"] == "done":
                return QoSRecord.from_dict(j["record"])
            if j["state"] == "failed":
                raise BoardError(f"job {job_id} on {self.url} failed: {j.get('error')}")
            if time.monotonic() > end:
                raise BoardError(f"job {job_id} on {self.url} is still {j['state']} after "
                                 f"{timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def measure(self, package_dir: str | os.PathLike, frames: int = 50, warmup: int = 2,
                timeout: float = 600.0) -> QoSRecord:
        """Upload (once), bench and wait: the measured (or simulated) QoS record."""
        return self.wait(self.bench(self.upload(package_dir), frames, warmup), timeout)

    def stream(self, last_event_id: str | None = None, kinds: Sequence[str] | None = None,
               stop: threading.Event | None = None) -> Iterator[StreamEvent]:
        """The QoS stream's events, for ever (until ``stop`` is set or the board stays
        away longer than ``timeout``): reconnects with ``Last-Event-ID`` after a lost
        connection and never yields an event twice."""
        last = last_event_id
        seen: set[str] = set()
        silent_since = None
        while stop is None or not stop.is_set():
            headers = {"Accept": "text/event-stream"}
            if last:
                headers["Last-Event-ID"] = last
            req = urllib.request.Request(self.url + "/api/v1/qos/stream", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:
                    silent_since = None
                    for ev in _parse_sse(r, stop):
                        if ev.id in seen:
                            continue
                        seen.add(ev.id)
                        last = ev.id
                        if kinds is None or ev.kind in kinds:
                            yield ev
            except (urllib.error.URLError, OSError, ValueError) as e:
                if isinstance(e, urllib.error.HTTPError) and e.code < 500 and e.code != 429:
                    raise BoardError(f"{self.url}: stream refused: HTTP {e.code}") from None
                now = time.monotonic()
                silent_since = silent_since or now
                if now - silent_since > self.timeout:
                    raise BoardUnavailable(f"the board at {self.url} stream stayed away for "
                                           f"{self.timeout:.0f} s") from None
                time.sleep(0.3)


def _parse_sse(resp, stop: threading.Event | None) -> Iterator[StreamEvent]:
    """Events of an SSE response (a keep-alive arrives at least every 10 s)."""
    eid, kind, data = "", "message", []
    for raw in resp:
        if stop is not None and stop.is_set():
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data and eid:
                yield StreamEvent(eid, kind, json.loads("\n".join(data)))
            eid, kind, data = "", "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            eid = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


class BoardFarmSource:
    """A :class:`host_search.measure.QoSSource` over several board services."""

    def __init__(self, urls: Sequence[str], token_file: str | os.PathLike | None = None,
                 frames: int = FARM_FRAMES, warmup: int = FARM_WARMUP,
                 timeout: float = BOARD_TIMEOUT_S, job_timeout: float = 900.0):
        if not urls:
            raise BoardError("a board farm needs at least one --board URL")
        token = read_token(token_file) if token_file else None
        self.clients = [BoardClient(u, token=token, timeout=timeout) for u in urls]
        self.frames, self.warmup, self.job_timeout = frames, warmup, job_timeout
        self.name = f"farm:{len(self.clients)} boards"
        self._infos: dict[str, dict] = {}

    def _info(self, c: BoardClient) -> dict | None:
        if c.url not in self._infos:
            try:
                self._infos[c.url] = c.info()
            except BoardUnavailable:
                return None
        return self._infos[c.url]

    def _runs(self, c: BoardClient, design: Design) -> bool:
        info = self._info(c)
        if info is None:
            return False
        if info.get("can_load_any_overlay"):
            return True
        loaded = info.get("loaded") or {}
        return loaded.get("hardware_id") == design.overlay.hardware_id_hex

    def can_measure(self, design: Design) -> bool:
        return any(self._runs(c, design) for c in self.clients)

    def measure(self, designs: Sequence[Design], seed: int = 0) -> list[QoSRecord | None]:
        """Each design on a free board that runs it (boards work in parallel)."""
        from pynq_codesign.randparams import random_package
        out: list[QoSRecord | None] = [None] * len(designs)
        todo: queue.Queue = queue.Queue()
        for i in range(len(designs)):
            todo.put(i)
        alive = {c.url: True for c in self.clients}
        lock = threading.Lock()
        with tempfile.TemporaryDirectory(prefix="codesign-farm-") as tmp:
            def package(i: int) -> Path:
                p = Path(tmp) / f"p{i}"
                with lock:
                    if not p.exists():
                        random_package(p, designs[i], seed=seed)
                return p

            def worker(c: BoardClient) -> None:
                skipped: list[int] = []
                while True:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        break
                    if not self._runs(c, designs[i]):
                        skipped.append(i)
                        continue
                    try:
                        rec = c.measure(package(i), self.frames, self.warmup,
                                        self.job_timeout)
                    except BoardUnavailable:
                        alive[c.url] = False
                        todo.put(i)                  # another board takes it
                        break
                    except BoardError as e:
                        rec = None
                        print(f"codesign: warning: {e}", flush=True)
                    if rec is not None:
                        rec.extra["board"] = c.url
                        out[i] = rec
                for i in skipped:
                    todo.put(i)

            for _ in range(3):                       # rounds: a board may drop out
                threads = [threading.Thread(target=worker, args=(c,), daemon=True)
                           for c in self.clients if alive[c.url]]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if todo.empty() or not any(alive.values()):
                    break
                left = list(iter_queue(todo))
                if all(not any(self._runs(c, designs[i]) for c in self.clients
                               if alive[c.url]) for i in left):
                    break
                for i in left:
                    todo.put(i)
        if not any(alive.values()) and any(r is None for r in out):
            raise BoardUnavailable(f"every board of the farm ({', '.join(alive)}) is "
                                   "unreachable")
        return out


def iter_queue(q: queue.Queue) -> Iterator:
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return

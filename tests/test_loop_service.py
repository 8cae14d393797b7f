"""The board service as a user meets it: a real process on 127.0.0.1, HTTP from outside."""
from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import stat
import tarfile
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import random_package
from tests.loop_helpers import (Service, env_ok, get, package_tgz, post, staging_left, tgz,
                                upload)

pytestmark = pytest.mark.skipif(not env_ok(), reason="flask/waitress not installed")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    base = tmp_path_factory.mktemp("svc")
    s = Service(base / "data", base / "token").start()
    s.pkg = random_package(base / "pkg").root
    yield s
    s.kill("TERM")


def _sse_events(url: str, headers: dict | None = None, until=None, timeout: float = 30):
    """(id, event, data) tuples of the stream until ``until(events)`` is true."""
    req = urllib.request.Request(url + "/api/v1/qos/stream", headers=headers or {})
    out, cur = [], {}
    with urllib.request.urlopen(req, timeout=timeout) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in cur:
                    out.append((cur.get("id"), cur.get("event"), json.loads(cur["data"])))
                    if until and until(out):
                        return out
                cur = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                cur[k] = v
    return out


def test_board_info_openapi_dashboard_token(svc):
    code, body = get(svc.url + "/api/v1/board")
    b = json.loads(body)
    assert code == 200 and b["simulated"] and b["source"] == "simulated"
    assert b["part"] == "xc7z020clg400-1" and b["service_version"] and "clock_mhz" in b
    assert "paths" in json.loads(get(svc.url + "/api/v1/openapi.json")[1])
    code, page = get(svc.url + "/")
    assert code == 200 and b"<html" in page and b'src="http' not in page
    for asset in (b"static/chart.js", b"static/dashboard.js"):
        assert asset in page
        assert get(svc.url + "/" + asset.decode())[0] == 200
    assert stat.S_IMODE(os.stat(svc.token_file).st_mode) == 0o600


def _bad_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x",
                link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, data if kind == tarfile.REGTYPE else None


def _bomb() -> bytes:
    """A gzip bomb: one member of 300 MB of zeros (a few hundred kB compressed)."""
    ti = tarfile.TarInfo("params.bin")
    ti.size = 300 * 1024 * 1024

    class Zeros(io.RawIOBase):
        left = ti.size

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
        t.addfile(ti, io.BufferedReader(Zeros()))
    return buf.getvalue()


def _bad_checksum(pkg: Path, tmp: Path) -> bytes:
    import shutil
    bad = tmp / "badsum"
    shutil.copytree(pkg, bad)
    p = bad / "params.bin"
    data = bytearray(p.read_bytes())
    data[100] ^= 0xFF
    p.write_bytes(bytes(data))
    return package_tgz(bad)


@pytest.mark.parametrize("case", ["too_large", "truncated", "bad_checksum", "dotdot",
                                  "absolute", "symlink", "hardlink", "device", "fifo",
                                  "many_members", "gzip_bomb", "junk", "no_manifest",
                                  "wrong_token", "no_token"])
def test_bad_uploads_refused_and_nothing_kept(svc, tmp_path, case):
    good = package_tgz(svc.pkg)
    token = svc.token
    if case == "too_large":
        data = os.urandom(65 * 1024 * 1024)
    elif case == "truncated":
        data = good[: len(good) // 2]
    elif case == "bad_checksum":
        data = _bad_checksum(svc.pkg, tmp_path)
    elif case == "dotdot":
        data = package_tgz(svc.pkg, [_bad_member("../../escape-loop.txt")])
    elif case == "absolute":
        data = package_tgz(svc.pkg, [_bad_member("/tmp/escape-loop-abs.txt")])
    elif case == "symlink":
        data = package_tgz(svc.pkg, [_bad_member("link", tarfile.SYMTYPE, link="/etc/passwd")])
    elif case == "hardlink":
        data = package_tgz(svc.pkg, [_bad_member("hard", tarfile.LNKTYPE, link="/etc/passwd")])
    elif case == "device":
        data = package_tgz(svc.pkg, [_bad_member("dev", tarfile.CHRTYPE)])
    elif case == "fifo":
        data = package_tgz(svc.pkg, [_bad_member("fifo", tarfile.FIFOTYPE)])
    elif case == "many_members":
        data = tgz([_bad_member(f"f{i}") for i in range(3000)])
    elif case == "gzip_bomb":
        data = _bomb()
    elif case == "junk":
        data = os.urandom(3000)
    elif case == "no_manifest":
        data = tgz([_bad_member("hello.txt")])
    else:
        data = good
        token = "wrong-token-1234567890" if case == "wrong_token" else None
    before = set(os.listdir(svc.data / "designs"))
    code, body = upload(svc.url, data, token)
    want = {"too_large": 413, "wrong_token": 401, "no_token": 401}.get(case, 400)
    assert code == want, body[:300]
    err = json.loads(body)["error"]
    assert err and b"Traceback" not in body
    assert set(os.listdir(svc.data / "designs")) == before       # nothing kept
    assert not staging_left(svc.data)
    assert not Path("/tmp/escape-loop.txt").exists()
    assert not Path("/tmp/escape-loop-abs.txt").exists()


def test_upload_bench_stream_result_and_bad_requests(svc):
    from host_search.client import BoardClient, BoardError
    c = BoardClient(svc.url, token_file=svc.token_file, timeout=20)
    did = c.upload(svc.pkg)
    assert c.upload(svc.pkg) == did                  # one upload per package
    got: list = []
    th = threading.Thread(target=lambda: got.extend(_sse_events(
        svc.url, until=lambda ev: any(e[1] == "result" for e in ev))), daemon=True)
    th.start()
    threading.Event().wait(0.5)
    job = c.bench(did, frames=6, warmup=1)
    rec = c.wait(job, timeout=60)
    th.join(30)
    assert rec.source == "simulated" and rec.fps > 0 and rec.power_source == "simulated"
    frames = [e for e in got if e[1] == "frame" and e[2]["job"] == job]
    power = [e for e in got if e[1] == "power" and e[2]["job"] == job]
    assert [f[2]["frame"] for f in frames] == list(range(6))
    assert all(f[2]["source"] == "simulated" and len(f[2]["bundles_ms"]) == len(rec.bundles)
               for f in frames)
    assert power and all(p[2]["source"] == "simulated" for p in power)
    seqs = [int(e[0].rsplit("-", 1)[1]) for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    tok = svc.token
    url = f"{svc.url}/api/v1/designs/{did}/bench"
    for body, want in ((b'{"frames": "many"', 400), (b'{"frames": "many"}', 400),
                       (b'{"frames": 0}', 400), (b'{"frame": 3}', 400), (b"[1]", 400)):
        code, out = post(url, body, tok, "application/json")
        assert code == want and b"Traceback" not in out and json.loads(out)["error"]
    assert post(f"{svc.url}/api/v1/designs/nope/bench", b"{}", tok, "application/json")[0] \
        == 404
    assert get(f"{svc.url}/api/v1/jobs/nope")[0] == 404
    with pytest.raises(BoardError, match="401"):
        BoardClient(svc.url, token="x" * 20).bench(did, frames=1)


def test_stream_replays_after_reconnect(svc):
    """A client that drops and reconnects with Last-Event-ID misses nothing."""
    from host_search.client import BoardClient
    c = BoardClient(svc.url, token_file=svc.token_file, timeout=20)
    did = c.upload(svc.pkg)
    # connect, see one event of a job, drop the connection
    box: list = []
    th = threading.Thread(target=lambda: box.extend(_sse_events(
        svc.url, until=lambda ev: len(ev) >= 3)), daemon=True)
    th.start()
    threading.Event().wait(0.4)
    job = c.bench(did, frames=12, warmup=0)
    th.join(30)
    last_id = box[-1][0]
    c.wait(job, timeout=60)                          # the rest happened while away
    rest = _sse_events(svc.url, headers={"Last-Event-ID": last_id},
                       until=lambda ev: any(e[1] == "result" and e[2]["job"] == job
                                            for e in ev))
    seq = [int(e[0].rsplit("-", 1)[1]) for e in box + rest]
    assert seq == list(range(seq[0], seq[0] + len(seq)))     # contiguous, no duplicate
    frames = [e[2]["frame"] for e in box + rest if e[1] == "frame" and e[2]["job"] == job]
    assert frames == list(range(12))


def test_load_with_stream_open_no_5xx_no_lost_sample(svc):
    from host_search.client import BoardClient
    c = BoardClient(svc.url, token_file=svc.token_file, timeout=20)
    did = c.upload(svc.pkg)
    got: list = []
    th = threading.Thread(target=lambda: got.extend(_sse_events(
        svc.url, until=lambda ev: any(e[1] == "result" for e in ev), timeout=60)),
        daemon=True)
    th.start()
    threading.Event().wait(0.4)
    job = c.bench(did, frames=30, warmup=0)

    def hit(i):
        return get(svc.url + ("/api/v1/board", "/api/v1/jobs", f"/api/v1/jobs/{job}",
                              "/api/v1/designs")[i % 4])[0]
    with cf.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(hit, range(400)))
    assert all(code < 500 for code in codes) and codes.count(200) == 400
    c.wait(job, timeout=60)
    th.join(30)
    frames = [e[2]["frame"] for e in got if e[1] == "frame" and e[2]["job"] == job]
    assert frames == list(range(30))


def test_streams_capped(tmp_path):
    s = Service(tmp_path / "data", tmp_path / "tok", extra=("--max-streams", "1")).start()
    try:
        r = urllib.request.urlopen(s.url + "/api/v1/qos/stream", timeout=10)
        code, body = get(s.url + "/api/v1/qos/stream")
        assert code == 429 and "streams" in json.loads(body)["error"]
        assert get(s.url + "/api/v1/board")[0] == 200
        r.close()
    finally:
        s.kill("TERM")


def test_token_file_refused_when_others_can_read(tmp_path):
    import subprocess
    import sys
    tok = tmp_path / "tok"
    tok.write_text("a" * 40)
    tok.chmod(0o644)
    r = subprocess.run([sys.executable, "-m", "pynq_codesign.cli", "board", "serve", "--sim",
                        "--port", "0", "--token-file", str(tok), "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "chmod 600" in r.stderr and "Traceback" not in r.stderr

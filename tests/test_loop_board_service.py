"""The board service's parts in process (also under `make test-board`: Python 3.10,
numpy 1.x, no torch): upload checks, the event bus's ids and replay, request checks,
the store across a restart, and the Flask routes through its test client."""
from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest

from pynq_codesign.server.events import EventBus
from pynq_codesign.server.store import Job, Store
from pynq_codesign.server.uploads import UploadError, unpack_package, unpack_to
from tests.helpers import random_package


def _tgz(members) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                ti.linkname = "/etc/passwd"
                t.addfile(ti)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("members,msg", [
    ([("../x", tarfile.REGTYPE, b"1")], "'..'"),
    ([("a/../../x", tarfile.REGTYPE, b"1")], "'..'"),
    ([("/abs", tarfile.REGTYPE, b"1")], "absolute"),
    ([("l", tarfile.SYMTYPE, b"")], "link"),
    ([("h", tarfile.LNKTYPE, b"")], "link"),
    ([("d", tarfile.CHRTYPE, b"")], "device"),
    ([("b", tarfile.BLKTYPE, b"")], "device"),
    ([("f", tarfile.FIFOTYPE, b"")], "FIFO"),
    ([(f"m{i}", tarfile.REGTYPE, b"") for i in range(600)], "members"),
    ([("big", tarfile.REGTYPE, b"\0" * 4096)], "more than"),
])
def test_unpack_refuses(tmp_path, members, msg):
    with pytest.raises(UploadError, match=msg):
        unpack_to(_tgz(members), tmp_path, max_bytes=1024)


def test_unpack_refuses_truncated_and_junk(tmp_path):
    data = _tgz([("a", tarfile.REGTYPE, b"x" * 5000)]).getvalue()
    with pytest.raises(UploadError, match="not a whole tar.gz"):
        unpack_to(io.BytesIO(data[: len(data) // 2]), tmp_path)
    with pytest.raises(UploadError, match="not a whole tar.gz"):
        unpack_to(io.BytesIO(b"junk" * 100), tmp_path / "j")


def test_unpack_package_checks_checksums_and_keeps_nothing_on_failure(tmp_path):
    pkg = random_package(tmp_path / "pkg").root
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(pkg, arcname="pkg")                  # one top folder is fine
    buf.seek(0)
    store = tmp_path / "store"
    final, p = unpack_package(buf, store, "d1")
    assert (final / "manifest.json").is_file() and p.design.name == "tiny"
    (pkg / "params.bin").write_bytes(b"\0" * (pkg / "params.bin").stat().st_size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(pkg, arcname=".")
    buf.seek(0)
    with pytest.raises(UploadError, match="does not verify"):
        unpack_package(buf, store, "d2")
    assert sorted(x.name for x in store.iterdir()) == ["d1"]


def test_event_bus_ids_replay_and_gap():
    bus = EventBus("boot1", replay=5)
    for i in range(3):
        bus.publish("frame", {"i": i})
    assert bus.start_after(None) == 3                    # a new client: from now on
    assert bus.start_after("boot1-1") == 1
    assert bus.start_after("older-7") == 0               # another boot: from the start
    ev, lost = bus.after(1, 0)
    assert [e.seq for e in ev] == [2, 3] and lost == 0
    for i in range(5):
        bus.publish("frame", {"i": i})
    ev, lost = bus.after(1, 0)
    assert [e.seq for e in ev] == [4, 5, 6, 7, 8] and lost == 2
    stop = threading.Event()
    gen = bus.sse(6, stop, batch_s=0.0)
    assert next(gen).startswith("retry:")
    chunk = next(gen)
    assert "id: boot1-7\n" in chunk and "id: boot1-8\n" in chunk and "boot1-6\n" not in chunk
    stop.set()


def test_store_survives_a_restart(tmp_path):
    s = Store(tmp_path)
    s.save_job(Job("j1", 1, "d", 5, 0, None, state="done", record={"source": "simulated"}))
    s.save_job(Job("j2", 2, "d", 5, 0, None, state="running"))
    s.save_job(Job("j3", 3, "d", 5, 0, None, state="queued"))
    (tmp_path / "designs" / ".staging-dx").mkdir()
    s2 = Store(tmp_path)
    assert s2.jobs["j1"].record == {"source": "simulated"}
    assert [j.id for j in s2.unfinished()] == ["j2", "j3"]
    assert not (tmp_path / "designs" / ".staging-dx").exists()


def test_routes_in_process(tmp_path):
    pytest.importorskip("flask")
    from pynq_codesign.server import board_facts
    from pynq_codesign.server.app import Service, create_app
    from pynq_codesign.server.jobs import JobRunner
    from pynq_codesign.platform.sim.board import SimPlatform
    store, bus = Store(tmp_path / "data"), EventBus()
    runner = JobRunner(store, bus, lambda: SimPlatform(3))
    runner.start()
    svc = Service(store, bus, runner, "t" * 32, board_facts(True, 3, "pynq-z1"), 2)
    c = create_app(svc).test_client()
    assert c.get("/api/v1/board").get_json()["board_seed"] == 3
    pkg = random_package(tmp_path / "pkg").root
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(pkg, arcname=".")
    auth = {"Authorization": "Bearer " + "t" * 32}
    r = c.post("/api/v1/designs", data={"package": (io.BytesIO(buf.getvalue()), "p.tgz")},
               headers=auth, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    did = r.get_json()["id"]
    assert c.post("/api/v1/designs", data=buf.getvalue(),
                  content_type="application/gzip").status_code == 401
    r = c.post(f"/api/v1/designs/{did}/bench", data=b'{"frames": 3, "warmup": 0}',
               headers=auth, content_type="application/json")
    assert r.status_code == 202
    job = r.get_json()["id"]
    for _ in range(600):
        j = c.get(f"/api/v1/jobs/{job}").get_json()
        if j["state"] in ("done", "failed"):
            break
        threading.Event().wait(0.05)
    assert j["state"] == "done", j
    assert j["record"]["source"] == "simulated" and j["record"]["power_source"] == "simulated"
    r = c.post(f"/api/v1/designs/{did}/bench", data=b"{", headers=auth,
               content_type="application/json")
    assert r.status_code == 400 and "JSON" in r.get_json()["error"]
    assert json.loads(c.get("/api/v1/openapi.json").data)["paths"]

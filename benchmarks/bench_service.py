"""The board service under load: requests per second with 8 streams open, and 400
concurrent requests while a benchmark streams (no 5xx, no lost sample).

It starts ``codesign board serve --sim`` as a real process on 127.0.0.1, opens 8 QoS
streams, runs a benchmark job whose samples every stream must see, and meanwhile fires
GET requests from 16 client threads. Figures are this host's wall clock (the service
runs here, not on a board).

    .venv/bin/python benchmarks/bench_service.py [--requests 400] [--frames 60]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host_search.client import BoardClient  # noqa: E402
from tests.helpers import random_package  # noqa: E402
from tests.loop_helpers import Service  # noqa: E402


def follow(url: str, job_box: dict, out: list, ready: threading.Event) -> None:
    """Collect the frame numbers of the job in ``job_box`` from one stream."""
    req = urllib.request.Request(url + "/api/v1/qos/stream")
    with urllib.request.urlopen(req, timeout=120) as r:
        ready.set()
        ev, data = "", ""
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                d = json.loads(data)
                if ev == "frame" and d.get("job") == job_box.get("id"):
                    out.append(d["frame"])
                if ev == "result" and d.get("job") == job_box.get("id"):
                    return
                data = ""


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 599


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tp = Path(t)
        s = Service(tp / "data", tp / "tok", extra=("--max-streams", str(a.streams))).start()
        try:
            c = BoardClient(s.url, token_file=s.token_file)
            did = c.upload(random_package(tp / "pkg").root)
            job: dict = {}
            outs = [[] for _ in range(a.streams)]
            ready = [threading.Event() for _ in range(a.streams)]
            ths = [threading.Thread(target=follow, args=(s.url, job, outs[i], ready[i]),
                                    daemon=True) for i in range(a.streams)]
            for th in ths:
                th.start()
            for r in ready:
                r.wait(30)
            # requests per second with the streams open (no job running)
            urls = [s.url + p for p in ("/api/v1/board", "/api/v1/designs", "/api/v1/jobs")]
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(16) as ex:
                idle = list(ex.map(lambda i: get(urls[i % 3]), range(a.requests)))
            rps_idle = a.requests / (time.perf_counter() - t0)
            # the same while a benchmark job streams its samples to every stream
            job["id"] = c.bench(did, frames=a.frames, warmup=0)
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(16) as ex:
                busy = list(ex.map(lambda i: get(urls[i % 3] if i % 4 else
                                                 f"{s.url}/api/v1/jobs/{job['id']}"),
                                   range(a.requests)))
            rps_busy = a.requests / (time.perf_counter() - t0)
            c.wait(job["id"], timeout=300)
            for th in ths:
                th.join(60)
        finally:
            s.kill("TERM")
    bad = [x for x in idle + busy if x >= 500]
    lost = [i for i, o in enumerate(outs) if o != list(range(a.frames))]
    print(f"{a.streams} QoS streams open; {a.requests} GETs from 16 threads each round "
          "(host wall clock, simulated board)")
    print(f"  requests/s, streams idle:            {rps_idle:8.0f}")
    print(f"  requests/s, job streaming {a.frames} frames: {rps_busy:8.0f}")
    print(f"  5xx or no answer: {len(bad)} of {2 * a.requests}")
    print(f"  streams that lost or repeated a sample: {len(lost)} of {a.streams} "
          f"(each must see frames 0..{a.frames - 1} of the job)")
    return 1 if bad or lost else 0


if __name__ == "__main__":
    sys.exit(main())

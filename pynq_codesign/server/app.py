"""The Flask application of the board service: routes, authentication, errors.

Flask is imported inside :func:`create_app` only, so the rest of the board side imports
without it. Every route answers JSON (the dashboard and its static files aside). Mutating
routes (``POST``) need ``Authorization: Bearer <token>``: 401 otherwise. A request the
service cannot take gets a 4xx with ``{"error": "..."}`` naming the problem; an
unexpected failure is logged on the service's stderr and answered 500 without details
(never a traceback to the client).
"""
from __future__ import annotations

import hmac
import json
import re
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import CodesignError
from .events import EventBus
from .jobs import JobRunner
from .openapi import openapi
from .store import Store, new_id
from .uploads import MAX_UPLOAD_BYTES, UploadError, unpack_package

STATIC = Path(__file__).resolve().parent / "static"
#: Most frames one benchmark job may ask for.
MAX_FRAMES = 10000
MAX_WARMUP = 100
_IMAGES_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Service:
    """Everything the routes share (no global state)."""

    store: Store
    bus: EventBus
    runner: JobRunner
    token: str
    board: dict                         # static facts: board, part, clock, sim, ...
    max_streams: int
    streams: int = 0
    stop: threading.Event | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.stop = self.stop or threading.Event()

    def open_stream(self) -> bool:
        with self._lock:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
            return True

    def close_stream(self) -> None:
        with self._lock:
            self.streams -= 1


class BadRequest(CodesignError):
    """A request the service refuses (400 unless ``status`` says otherwise)."""

    def __init__(self, msg: str, status: int = 400):
        super().__init__(msg)
        self.status = status


def _int_field(body: dict, name: str, default: int, lo: int, hi: int) -> int:
    v = body.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f"'{name}' must be an integer, got {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise BadRequest(f"'{name}' must be between {lo} and {hi}, got {v}")
    return v


def bench_request(body: object) -> tuple[int, int, str | None]:
    """``frames``, ``warmup`` and ``images`` of a bench request, checked."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object like {\"frames\": 50}")
    unknown = sorted(set(body) - {"frames", "warmup", "images"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; use frames, warmup, images")
    frames = _int_field(body, "frames", 50, 1, MAX_FRAMES)
    warmup = _int_field(body, "warmup", 2, 0, MAX_WARMUP)
    images = body.get("images")
    if images is not None and not (isinstance(images, str) and _IMAGES_NAME.match(images)):
        raise BadRequest("'images' names a folder of the board's images folder (letters, "
                         "digits, '.', '_', '-'), or is null for the package's golden inputs")
    return frames, warmup, images


def create_app(svc: Service):
    """The Flask application serving ``svc``."""
    from flask import Flask, Response, jsonify, request, send_from_directory
    from werkzeug.exceptions import HTTPException

    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 1024 * 1024
    app.json.sort_keys = False

    def error(status: int, msg: str):
        r = jsonify({"error": msg, "status": status})
        r.status_code = status
        if status == 401:
            r.headers["WWW-Authenticate"] = 'Bearer realm="codesign board"'
        return r

    @app.errorhandler(BadRequest)
    def _bad(e: BadRequest):
        return error(e.status, str(e))

    @app.errorhandler(CodesignError)
    def _codesign(e: CodesignError):
        return error(400, str(e))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        msg = e.description or e.name
        if e.code == 413:
            msg = (f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; a "
                   "deployment package is far smaller")
        return error(e.code or 400, msg)

    @app.errorhandler(Exception)
    def _bug(e: Exception):
        traceback.print_exc(file=sys.stderr)
        return error(500, f"internal error ({type(e).__name__}); see the service log")

    @app.after_request
    def _headers(r):
        r.headers.setdefault("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; "
                             "style-src 'self' 'unsafe-inline'")
        r.headers.setdefault("X-Content-Type-Options", "nosniff")
        return r

    def need_token() -> None:
        auth = request.headers.get("Authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(tok.strip().encode(),
                                                                  svc.token.encode()):
            raise BadRequest("missing or wrong bearer token (Authorization: Bearer TOKEN, "
                             "the token is in the service's --token-file)", 401)

    def design_or_404(design_id: str):
        entry = svc.store.designs.get(design_id)
        if entry is None:
            raise BadRequest(f"no design {design_id!r} on this board; upload it first", 404)
        return entry

    # --- pages ------------------------------------------------------------------------
    @app.get("/")
    def dashboard():
        return send_from_directory(STATIC, "index.html", mimetype="text/html")

    @app.get("/api/v1/openapi.json")
    def api_doc():
        return jsonify(openapi(__version__))

    # --- board ------------------------------------------------------------------------
    @app.get("/api/v1/board")
    def board():
        d = dict(svc.board)
        d.update(loaded=svc.runner.loaded, current_job=svc.runner.current,
                 queued_jobs=svc.runner.queued, designs=len(svc.store.designs),
                 boot_id=svc.bus.boot_id, open_streams=svc.streams,
                 max_streams=svc.max_streams, service_version=__version__)
        return jsonify(d)

    # --- designs ----------------------------------------------------------------------
    @app.get("/api/v1/designs")
    def designs():
        return jsonify({"designs": [e.to_dict() for e in svc.store.designs.values()]})

    @app.get("/api/v1/designs/<design_id>")
    def design(design_id: str):
        return jsonify(design_or_404(design_id).to_dict())

    @app.post("/api/v1/designs")
    def upload():
        need_token()
        if "package" in request.files:
            stream = request.files["package"].stream
        elif request.mimetype in ("application/gzip", "application/x-gzip",
                                  "application/octet-stream"):
            stream = request.stream
        else:
            raise BadRequest("send the package as a multipart form field 'package' (a "
                             ".tar.gz), or as the body with Content-Type application/gzip")
        design_id = new_id("d")
        try:
            _, pkg = unpack_package(stream, svc.store.designs_dir, design_id)
        except UploadError as e:
            raise BadRequest(f"upload refused: {e}") from None
        entry = svc.store.add_design(design_id, pkg)
        svc.bus.publish("design", {"type": "design", **entry.to_dict()})
        r = jsonify({"id": design_id, **entry.to_dict()})
        r.status_code = 201
        return r

    @app.post("/api/v1/designs/<design_id>/bench")
    def bench(design_id: str):
        need_token()
        design_or_404(design_id)
        body = request.get_json(silent=True)
        if body is None:
            raw = request.get_data(cache=False, as_text=False)
            if raw.strip():
                raise BadRequest("the body is not valid JSON; send e.g. {\"frames\": 50}")
            body = {}
        frames, warmup, images = bench_request(body)
        job = svc.runner.submit(design_id, frames, warmup, images)
        r = jsonify({"id": job.id, "job": job.to_dict()})
        r.status_code = 202
        r.headers["Location"] = f"/api/v1/jobs/{job.id}"
        return r

    # --- jobs -------------------------------------------------------------------------
    @app.get("/api/v1/jobs")
    def jobs():
        js = sorted(svc.store.jobs.values(), key=lambda j: j.seq)
        return jsonify({"jobs": [{k: v for k, v in j.to_dict().items() if k != "record"}
                                 for j in js]})

    @app.get("/api/v1/jobs/<job_id>")
    def job(job_id: str):
        j = svc.store.jobs.get(job_id)
        if j is None:
            raise BadRequest(f"no job {job_id!r} on this board", 404)
        return jsonify(j.to_dict())

    # --- the QoS stream ---------------------------------------------------------------
    @app.get("/api/v1/qos/stream")
    def stream():
        last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        after = svc.bus.start_after(last)
        if not svc.open_stream():
            raise BadRequest(f"{svc.max_streams} streams are open already (the most this "
                             "board serves); close one or try later", 429)

        def gen():
            try:
                yield from svc.bus.sse(after, svc.stop)
            finally:
                svc.close_stream()

        return Response(gen(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app

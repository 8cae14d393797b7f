"""The board service: a Flask application served by waitress (``codesign board serve``).

``codesign board serve [--sim] [--board-seed S] [--host 127.0.0.1] [--port P]
--token-file F [--data-dir D]`` serves, on the board (or the simulated board on any
machine):

* ``GET /api/v1/board``, ``GET /api/v1/openapi.json``, ``GET /`` (the dashboard);
* ``POST /api/v1/designs`` (a package as tar.gz, checked: :mod:`.uploads`),
  ``POST /api/v1/designs/<id>/bench`` and ``GET /api/v1/jobs/<id>`` (:mod:`.jobs`);
* ``GET /api/v1/qos/stream``: Server-Sent Events of every sample (:mod:`.events`).

It binds to 127.0.0.1 unless told otherwise (a bitstream upload is root on the board).
Mutating requests need the bearer token of ``--token-file`` (created with mode 600 and
printed once if the file does not exist). waitress runs ``--max-streams`` threads for
streams plus :data:`REQUEST_THREADS` for everything else; more streams than that are
refused (429). It prints ``serving on http://HOST:PORT`` once it is listening.
Docs: ``docs/service.md``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import secrets
import socket
import stat
import sys
import threading
from pathlib import Path

from ..errors import CodesignError

#: waitress threads for ordinary requests (streams get their own on top).
REQUEST_THREADS = 8
#: Streams served at once by default.
MAX_STREAMS = 8


class ServeError(CodesignError):
    """The service cannot start as asked."""


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The bearer token from ``path``; if the file does not exist, a new token written
    there with mode 600 (``created`` True)."""
    path = Path(path)
    if path.exists():
        if not path.is_file():
            raise ServeError(f"--token-file {path}: not a file")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ServeError(f"--token-file {path}: readable by others (mode {mode:o}); "
                             f"chmod 600 {path}")
        tok = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(tok) < 16 or not tok.isprintable() or " " in tok:
            raise ServeError(f"--token-file {path}: holds no usable token (16 or more "
                             "printable characters, no spaces); delete it to have one made")
        return tok, False
    if not path.parent.is_dir():
        raise ServeError(f"--token-file {path}: the folder {path.parent} does not exist")
    tok = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(tok + "\n")
    return tok, True


def board_facts(sim: bool, seed: int, device_name: str) -> dict:
    """What ``GET /api/v1/board`` says about the board itself."""
    from ..devices import load_device
    dev = load_device(device_name)
    try:
        pynq_version = importlib.metadata.version("pynq")
    except importlib.metadata.PackageNotFoundError:
        pynq_version = None
    return {"board": dev.board, "device": dev.name, "part": dev.part,
            "clock_mhz": dev.max_clock_mhz, "cpu": f"{dev.cpu_cores}x {dev.cpu_name}",
            "pynq_version": None if sim else pynq_version, "simulated": sim,
            "source": "simulated" if sim else "measured",
            "board_seed": seed if sim else None,
            "can_load_any_overlay": sim,
            "power": ("simulated external meter" if sim and not dev.has_power_sensors
                      else "rails" if dev.has_power_sensors else "estimated (no sensors)")}


def default_data_dir(sim: bool, seed: int) -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "pynq-codesign" / (f"board-service-sim{seed}" if sim else "board-service")


def build_service(args: argparse.Namespace):
    """The service object (store, event bus, job runner, token) from the options."""
    from ..driver import open_platform
    from .app import Service
    from .events import EventBus
    from .jobs import JobRunner
    from .store import Store
    data = Path(args.data_dir) if args.data_dir else default_data_dir(args.sim, args.board_seed)
    try:
        store = Store(data)
    except OSError as e:
        raise ServeError(f"--data-dir {data}: {e.strerror or e}") from None
    token, created = load_or_create_token(Path(args.token_file))
    bus = EventBus()
    images = data / "images"
    runner = JobRunner(store, bus, lambda: open_platform(args.sim, args.board_seed),
                       timeout=args.timeout, power=args.power,
                       images_root=images if images.is_dir() else None)
    svc = Service(store, bus, runner, token,
                  board_facts(args.sim, args.board_seed, args.device), args.max_streams)
    return svc, created


def serve_main(args: argparse.Namespace) -> int:
    """``codesign board serve``: start the service and serve until interrupted."""
    try:
        import waitress
        from .app import create_app
        create_app  # noqa: B018
    except ModuleNotFoundError as e:
        raise ServeError(f"the board service needs {e.name}: pip install "
                         "'pynq-codesign[service]' (flask, waitress)") from None
    if args.max_streams < 1:
        raise ServeError(f"--max-streams must be at least 1, got {args.max_streams}")
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be 0..65535, got {args.port}")
    try:                                  # listen first: a busy port changes nothing
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        raise ServeError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") \
            from None
    try:
        svc, created = build_service(args)
    except BaseException:
        sock.close()
        raise
    if created:
        print(f"new bearer token written to {args.token_file} (mode 600): {svc.token}",
              flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}, not only this machine: anyone who can "
              "reach it and holds the token can load bitstreams", file=sys.stderr, flush=True)
    from .app import create_app
    app = create_app(svc)
    host, port = sock.getsockname()[:2]
    svc.runner.start()
    server = waitress.create_server(app, sockets=[sock],
                                    threads=REQUEST_THREADS + args.max_streams,
                                    connection_limit=max(100, 4 * REQUEST_THREADS),
                                    channel_timeout=120, clear_untrusted_proxy_headers=True,
                                    ident="codesign-board")
    print(f"serving on http://{host}:{port}", flush=True)
    try:
        server.run()
    finally:                              # Ctrl-C or SIGTERM: streams end, state is on disk
        svc.stop.set()
        svc.bus.close()
        threading.Event().wait(0.1)
        server.close()
        print("service stopped (designs and finished jobs are kept in "
              f"{svc.store.root})", file=sys.stderr)
    return 0

"""``codesign`` commands and the simulated board service as child processes of this one.

:func:`run_step` prints a command as a person would type it and runs it;
:class:`BoardService` runs ``codesign board serve --sim`` on 127.0.0.1 and a free port for
as long as a ``with`` block lasts. On Linux every child gets SIGTERM when its parent dies,
even by SIGKILL, so nothing is left running. Used by ``codesign demo`` and the notebooks.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pynq_codesign.errors import CodesignError

#: the ``codesign`` command of this interpreter (no PATH needed)
CODESIGN = [sys.executable, "-m", "pynq_codesign.cli"]


class StepError(CodesignError):
    """A step that failed; the message names the command, so a person can repeat it."""


def run_step(title: str, args: list[str], capture: bool = False) -> subprocess.CompletedProcess:
    """Print ``== title`` and ``$ codesign ARGS``, run it (its output goes straight to ours
    unless ``capture``), raise :class:`StepError` if it fails."""
    print(f"\n== {title}\n$ codesign {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(CODESIGN + args, text=True,
                       stdout=subprocess.PIPE if capture else None,
                       preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    if r.returncode != 0:
        raise StepError(f"step failed (exit {r.returncode}): codesign {' '.join(args)}")
    print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    return r


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the service gets SIGTERM when the demo dies, even by SIGKILL."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BoardService:
    """``codesign board serve --sim`` as a child process on 127.0.0.1 and a free port.

    A context manager: entering starts it and waits for its ``serving on URL`` line,
    leaving stops it (SIGTERM, then SIGKILL), also after an error or Ctrl-C. Its output
    goes to ``log``."""

    START_TIMEOUT_S = 90.0

    def __init__(self, data_dir: Path, token_file: Path, log: Path, board_seed: int):
        self.data_dir, self.token_file, self.log = data_dir, token_file, log
        self.board_seed = board_seed
        self.url: str | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return ["board", "serve", "--sim", "--board-seed", str(self.board_seed),
                "--host", "127.0.0.1", "--port", "0", "--token-file", str(self.token_file),
                "--data-dir", str(self.data_dir)]

    def __enter__(self) -> "BoardService":
        import queue
        import threading
        write_token(self.token_file)
        print(f"\n== Start the simulated board service (a separate process; log: {self.log})"
              f"\n$ codesign {' '.join(self.command)}", flush=True)
        self.log.write_text("")
        log = open(self.log, "a", encoding="utf-8")     # appends, as the pump below does
        self.proc = subprocess.Popen(CODESIGN + self.command, stdout=subprocess.PIPE,
                                     stderr=log, text=True, start_new_session=True,
                                     preexec_fn=_die_with_parent if sys.platform == "linux"
                                     else None)
        log.close()
        lines: queue.Queue = queue.Queue()

        def pump() -> None:   # the service's stdout into the log, the first lines to us
            with open(self.log, "a", encoding="utf-8") as f:
                for line in self.proc.stdout:
                    f.write(line)
                    f.flush()
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="service-log", daemon=True).start()
        deadline = time.monotonic() + self.START_TIMEOUT_S
        try:
            while self.url is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise StepError(f"the board service did not start within "
                                    f"{self.START_TIMEOUT_S:.0f} s; see {self.log}")
                if line is None:
                    raise StepError(f"the board service exited at start (exit "
                                    f"{self.proc.wait()}): {_last_line(self.log)}")
                if line.startswith("serving on "):
                    self.url = line.split()[-1].strip()
        except BaseException:
            self.stop()
            raise
        print(f"   serving on {self.url} (simulated board, seed {self.board_seed})",
              flush=True)
        return self

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc is not None:
            print(f"\n(board service stopped; its log: {self.log})", flush=True)


def write_token(path: Path) -> None:
    """A fresh bearer token, mode 600 (the service reads it; so does the client)."""
    import secrets
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(32) + "\n")


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(nothing logged)"

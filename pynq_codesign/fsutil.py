"""Writing results safely: stage, then rename; never into the input; respect the umask.

Every command that writes a folder (``export``, ``detect``, ``build-overlay``'s package
update, ``data synth``) follows the same rules, written once here:

* :func:`check_new_output` refuses an output folder that is, or lies inside, an input
  folder, that is an existing file, or that already holds something: nothing a user
  has is ever overwritten.
* :func:`staged_dir` writes into a hidden sibling folder and renames it into place only
  when everything is written; an interrupted or failed run leaves no half-written
  output (and the old version, when one is replaced, stays whole).
* Files and folders are created with the modes the process's umask allows (a temporary
  file from :mod:`tempfile` would be 0600 and its folder 0700: on a PYNQ image run as
  root the ``xilinx`` user could not read the results). :func:`public_mode` gives the
  mode; token files and the like choose their own.

Standard library only: the board side uses it.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import CodesignError

TMP_MARK = ".tmp-"


class OutputError(CodesignError):
    """An output path that cannot be used; the message says what to choose instead."""


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)             # pragma: no cover - no /proc (not Linux)
    os.umask(mask)
    return mask


def public_mode(directory: bool = False) -> int:
    """The mode a plain ``open()`` / ``mkdir()`` would give under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_new_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                     what: str = "--out") -> Path:
    """``out`` as a path that may receive a new output folder.

    Refuses an output that is, or lies inside, one of ``inputs`` (or contains one), an
    existing file, and a folder that is not empty. Returns the resolved path.
    """
    o = Path(out).resolve()
    for i in inputs:
        ip = Path(i).resolve()
        if _inside(o, ip):
            raise OutputError(f"{what} {out} is, or lies inside, the input {i}: that would "
                              "overwrite or re-read the inputs; choose a folder outside it")
        if _inside(ip, o):
            raise OutputError(f"{what} {out} contains the input {i}; choose a new folder "
                              "outside it")
    if o.exists() and not o.is_dir():
        raise OutputError(f"{what} {out} exists and is not a folder; choose a new path")
    if o.is_dir() and any(o.iterdir()):
        raise OutputError(f"{what} {out} exists and is not an empty folder; choose a new "
                          "folder (nothing is overwritten)")
    parent = o.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {out}: {parent} is not writable")
    return o


def remove_stale_temps(final: Path) -> None:
    """Remove staging folders of ``final`` that a killed run left behind (their
    process is gone)."""
    parent = final.parent
    if not parent.is_dir():
        return
    for p in parent.glob(f".{final.name}{TMP_MARK}*"):
        try:
            pid = int(p.name[len(final.name) + 1 + len(TMP_MARK):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """A hidden sibling folder to write into; it becomes ``final`` on success.

    Without ``replace``, ``final`` must be absent or an empty folder. With ``replace``,
    ``final`` (an existing folder) is swapped for the staged one atomically where the
    system allows (otherwise renamed aside first), then removed. On any exception, or
    SIGINT / SIGTERM, the staging folder is removed and ``final`` is left as it was.
    """
    final = Path(final).resolve()
    made = [p for p in [final.parent, *final.parent.parents] if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{TMP_MARK}{os.getpid()}-",
                                dir=final.parent))
    os.chmod(tmp, public_mode(directory=True))
    ok = False
    try:
        yield tmp
        ok = True
        if replace and final.is_dir():
            if _exchange(tmp, final):
                shutil.rmtree(tmp, ignore_errors=True)      # tmp now holds the old one
                return
            old = final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-old")
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
            return
        if final.is_dir():
            final.rmdir()                 # an empty folder (checked by the caller)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for p in made:                # parents this call created, innermost first
                with contextlib.suppress(OSError):
                    p.rmdir()


def write_file_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write a file through a temporary sibling and a rename, with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        os.fchmod(fd, public_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path

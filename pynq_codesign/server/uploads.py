"""Safe upload of a deployment package as a tar.gz: checked before anything is kept.

A bitstream upload is root on the board, so an upload is refused (:class:`UploadError`,
HTTP 400) unless every one of these holds, checked while the archive streams in:

* the compressed upload is at most :data:`MAX_UPLOAD_BYTES` (the web layer refuses more);
* it is a gzip-compressed tar that reads to its end (not truncated, not junk);
* every member is a regular file or a folder: no symbolic or hard links, no device
  files, FIFOs or sparse files; no absolute path, no ``..``, no odd characters;
* at most :data:`MAX_MEMBERS` members and :data:`MAX_UNPACKED_BYTES` unpacked (a gzip
  bomb is cut off by a counting reader under the decompressor, whatever the headers say);
* the result is one package (``manifest.json`` at the top, or in one top folder) that
  :func:`pynq_codesign.package.load_package` accepts: schema, sizes and SHA-256 of every
  file as the manifest says.

Members are written by this module (never ``tarfile.extract``) into a fresh staging folder
beside the store; only a whole, verified package is renamed into place
(:func:`unpack_package`); anything refused leaves nothing behind.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import CodesignError
from ..package import MANIFEST, Package, load_package

#: Largest compressed upload (a PYNQ-Z1 bitstream is 4 MB; params a few MB).
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Largest unpacked size of a package.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
#: Most members (files and folders) in a package archive.
MAX_MEMBERS = 512
#: Longest member path.
MAX_NAME_CHARS = 255


class UploadError(CodesignError):
    """An upload refused; the message names the member or check that failed."""


class _Counted(io.RawIOBase):
    """A reader that refuses to give more than ``limit`` bytes (the decompressed stream)."""

    def __init__(self, inner: BinaryIO, limit: int):
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._inner.readinto(b) if hasattr(self._inner, "readinto") else None
        if n is None:
            data = self._inner.read(len(b))
            n = len(data)
            b[:n] = data
        self.count += n
        if self.count > self._limit:
            raise UploadError(f"the archive unpacks to more than {self._limit} bytes "
                              "(a gzip bomb?); a package is far smaller")
        return n


def _member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, None for the top folder itself; refuses bad names."""
    if not name or "\x00" in name or "\\" in name or len(name) > MAX_NAME_CHARS:
        raise UploadError(f"member {name[:80]!r}: not a plain relative path")
    if name.startswith("/"):
        raise UploadError(f"member {name!r}: an absolute path; a package holds relative "
                          "paths only")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UploadError(f"member {name!r}: a path with '..' that would leave the upload "
                          "folder")
    if any(not p.isprintable() for p in parts):
        raise UploadError(f"member {name!r}: unprintable characters in its name")
    return PurePosixPath(*parts) if parts else None


def _kind(ti: tarfile.TarInfo) -> str:
    if ti.issym() or ti.islnk():
        return f"a link to {ti.linkname!r}"
    if ti.ischr() or ti.isblk():
        return "a device file"
    if ti.isfifo():
        return "a FIFO"
    if ti.issparse():
        return "a sparse file"
    return f"an entry of tar type {ti.type!r}"


def unpack_to(stream: BinaryIO, dest: Path, max_members: int = MAX_MEMBERS,
              max_bytes: int = MAX_UNPACKED_BYTES) -> int:
    """Unpack a tar.gz ``stream`` into the empty folder ``dest`` with every check above
    (not the package's own); returns the number of files written."""
    counted = _Counted(gzip.GzipFile(fileobj=stream, mode="rb"), max_bytes + 1024 * 1024)
    reader = io.BufferedReader(counted, buffer_size=64 * 1024)
    members = files = 0
    total = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for ti in tar:
                members += 1
                if members > max_members:
                    raise UploadError(f"the archive has more than {max_members} members; a "
                                      "package has a few dozen files")
                rel = _member_path(ti.name)
                if not (ti.isreg() or ti.isdir()):
                    raise UploadError(f"member {ti.name!r} is {_kind(ti)}; a package holds "
                                      "regular files and folders only")
                if rel is None:
                    continue
                target = dest.joinpath(*rel.parts)
                if ti.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                total += ti.size
                if total > max_bytes:
                    raise UploadError(f"the archive unpacks to more than {max_bytes} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    raise UploadError(f"member {ti.name!r} appears twice")
                src = tar.extractfile(ti)
                with open(target, "xb") as out:
                    shutil.copyfileobj(src, out, 64 * 1024)
                files += 1
    except UploadError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, gzip.BadGzipFile) as e:
        raise UploadError(f"not a whole tar.gz archive ({type(e).__name__}: {e}); upload "
                          "the package as `tar czf pkg.tgz -C PACKAGE .`") from None
    if files == 0:
        raise UploadError("the archive holds no files")
    return files


def package_root(folder: Path) -> Path:
    """The folder holding ``manifest.json``: the top, or its one sub-folder."""
    if (folder / MANIFEST).is_file():
        return folder
    subs = [p for p in folder.iterdir()]
    if len(subs) == 1 and subs[0].is_dir() and (subs[0] / MANIFEST).is_file():
        return subs[0]
    raise UploadError(f"no {MANIFEST} at the top of the archive (or in its one top folder): "
                      "this is not a deployment package")


def unpack_package(stream: BinaryIO, store: Path, name: str) -> tuple[Path, Package]:
    """Check and unpack an uploaded package into ``store / name``: a fresh staging folder,
    then :func:`load_package` (manifest, schema, checksums), then one rename."""
    store.mkdir(parents=True, exist_ok=True)
    final = store / name
    if final.exists():
        raise UploadError(f"design {name} exists already")
    stage = store / f".staging-{name}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        unpack_to(stream, stage)
        root = package_root(stage)
        try:
            load_package(root)
        except CodesignError as e:
            raise UploadError(f"the package does not verify: {_relative(e, stage)}") from None
        if root != stage:                 # move the one top folder's content up
            inner = stage.with_name(stage.name + ".inner")
            os.replace(root, inner)
            shutil.rmtree(stage)
            stage = inner
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return final, load_package(final)


def _relative(e: Exception, stage: Path) -> str:
    """An error message without the server's staging paths."""
    return str(e).replace(str(stage) + os.sep, "").replace(str(stage), "package")

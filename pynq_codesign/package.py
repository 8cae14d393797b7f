"""The deployment package: what carries a design from the host to the board.

A package is a folder::

    manifest.json        format, schema and package version, hardware ID, SHA-256 and size
                         of every other file, the overlay (if built), history of versions
    design.json          the design point (pynq_codesign.design)
    params.bin           weights, biases and pass descriptors in the accelerator's layout
                         (pynq_codesign.wire.build_program)
    golden/in_K.npy      golden input codes [H, W, C] and the output codes the accelerator
    golden/out_K.npy     must give for them (int16/int32 .npy)
    model.onnx           float model (host export)
    model_quant.onnx     QONNX model with Quant nodes (host export)
    overlay/*.bit, *.hwh, reports   added by `codesign build-overlay` as a new version

:func:`load_package` refuses a package whose manifest, checksums, schema or sizes do not
match, naming the file that is wrong; it never half-loads. :func:`write_package` (the
export) and :func:`add_files` (the overlay build) write a new manifest version.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from . import __version__
from .design import Design, DesignError, check_keys
from .errors import CodesignError
from .fsutil import staged_dir
from .wire import LayerParams, Program, WireError, build_program, weight_shape

FORMAT = "pynq-codesign-package"
PACKAGE_SCHEMA = 1
MANIFEST = "manifest.json"
DESIGN_FILE = "design.json"
PARAMS_FILE = "params.bin"
#: The keys a manifest may have (anything else is refused: a typo must not be ignored).
MANIFEST_KEYS = ("format", "schema_version", "version", "design_name", "hardware_id",
                 "tool_version", "created", "golden", "overlay", "info", "history", "files",
                 "manifest_sha256")
FILE_ENTRY_KEYS = ("sha256", "bytes")


class PackageError(CodesignError):
    """A package that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Package:
    root: Path
    manifest: dict
    design: Design
    program: Program
    golden: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def hardware_id(self) -> int:
        return self.design.overlay.hardware_id

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def bitstream(self) -> Path | None:
        ov = self.manifest.get("overlay") or {}
        return self.root / ov["bit"] if ov.get("bit") else None

    @property
    def hwh(self) -> Path | None:
        ov = self.manifest.get("overlay") or {}
        return self.root / ov["hwh"] if ov.get("hwh") else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_digest(m: dict) -> str:
    body = {k: v for k, v in m.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def program_layout(design: Design) -> Program:
    """The parameter buffer's layout for ``design`` (offsets and passes; zero data)."""
    net = design.network
    zeros: list[LayerParams | None] = []
    for lay, s in zip(net.layers, net.shapes()):
        zeros.append(LayerParams(np.zeros(weight_shape(lay.type, s.in_c, s.out_c), np.int64),
                                 np.zeros(s.out_c, np.int64)) if lay.is_conv else None)
    return build_program(design, zeros)


def _write_manifest(root: Path, base: dict, files: list[str]) -> dict:
    m = dict(base)
    m["files"] = {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
                  for rel in sorted(files)}
    m["manifest_sha256"] = _manifest_digest(m)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(m, indent=2) + "\n")
    tmp.replace(root / MANIFEST)
    return m


def write_package(out: str | Path, design: Design, program: Program,
                  golden: list[tuple[np.ndarray, np.ndarray]],
                  extra_files: dict[str, Path | bytes] | None = None,
                  info: dict | None = None) -> Package:
    """Write a new package (version 1) into ``out`` (created; must be empty or absent).

    The files are staged in a hidden sibling folder that becomes ``out`` once complete:
    an interrupted export leaves no half-written package.
    """
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise PackageError(f"{root}: exists and is not an empty folder; choose a new --out")
    with staged_dir(root) as tmp:
        files = _write_package_files(tmp, design, program, golden, extra_files)
        _write_manifest(tmp, _base_manifest(design, len(golden), info), files)
    return load_package(root)


def _write_package_files(root: Path, design: Design, program: Program,
                         golden: list[tuple[np.ndarray, np.ndarray]],
                         extra_files: dict[str, Path | bytes] | None) -> list[str]:
    files = [DESIGN_FILE, PARAMS_FILE]
    (root / DESIGN_FILE).write_text(design.to_json())
    program.params.tofile(root / PARAMS_FILE)
    (root / "golden").mkdir()
    out_dt = np.int16 if design.overlay.feature_bits <= 16 else np.int32
    for k, (x, y) in enumerate(golden):
        for name, arr in ((f"golden/in_{k}.npy", x), (f"golden/out_{k}.npy", y)):
            np.save(root / name, np.asarray(arr).astype(out_dt))
            files.append(name)
    for rel, src in (extra_files or {}).items():
        dst = safe_member(root, rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dst.write_bytes(src)
        else:
            shutil.copyfile(src, dst)
        files.append(rel)
    return files


def _base_manifest(design: Design, n_golden: int, info: dict | None) -> dict:
    return {
        "format": FORMAT, "schema_version": PACKAGE_SCHEMA, "version": 1,
        "design_name": design.name, "hardware_id": design.overlay.hardware_id_hex,
        "tool_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "golden": n_golden, "overlay": None, "info": info or {},
        "history": [{"version": 1, "change": "exported"}],
    }


def add_files(pkg: str | Path, files: dict[str, Path], change: str,
              overlay: dict | None = None) -> Package:
    """Add (or replace) files in a package as a new version and re-sign the manifest.

    ``overlay`` (``{"bit": rel, "hwh": rel, "reports": [rel, ...], ...}``) records a built
    overlay. The package is verified before and after. The new version is staged in a
    sibling folder and then takes the package's place (:func:`~pynq_codesign.fsutil.
    staged_dir`), so an interrupted run leaves the old version whole: the package is
    always either the old version or the new one.
    """
    current = load_package(pkg)
    root = current.root
    for rel in files:
        safe_member(root, rel)
    m = {k: v for k, v in current.manifest.items() if k not in ("files", "manifest_sha256")}
    m["version"] = current.version + 1
    m["history"] = list(m.get("history", [])) + [{"version": m["version"], "change": change}]
    if overlay is not None:
        m["overlay"] = overlay
    with staged_dir(root, replace=True) as tmp:
        shutil.copytree(root, tmp, symlinks=True, dirs_exist_ok=True)
        for rel, src in files.items():
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        _write_manifest(tmp, m, sorted(set(current.manifest["files"]) | set(files)))
        load_package(tmp)                 # the new version must load before it replaces
    return load_package(root)


def safe_member(root: Path, rel: object) -> Path:
    """``root / rel`` for a manifest path that stays inside the package.

    Refuses (:class:`PackageError`) an absolute path, ``..``, an empty or non-string path
    and any path through a symbolic link: a manifest must never make the loader read a
    file outside its package.
    """
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise PackageError(f"{root / MANIFEST}: file name {rel!r} is not a relative path "
                           "inside the package")
    pp = PurePosixPath(rel)
    if pp.is_absolute() or any(part in ("..", ".", "") for part in rel.split("/")):
        raise PackageError(f"{root / MANIFEST}: file {rel!r} lies outside the package; the "
                           "manifest is not trustworthy, export the package again")
    p = root
    for part in pp.parts:
        p = p / part
        if p.is_symlink():
            raise PackageError(f"{p}: a symbolic link; a package holds plain files only")
    return p


def _check_manifest_shape(mp: Path, m: dict) -> None:
    """Keys, file list and counts of a manifest are what this version writes."""
    try:
        check_keys(m, "", MANIFEST_KEYS, "manifest key")
        files = m.get("files")
        if not isinstance(files, dict):
            raise DesignError("files", "must be a JSON object of file entries")
        for rel, meta in files.items():
            check_keys(meta, f"files[{rel!r}]", FILE_ENTRY_KEYS, "file entry key")
            if not (isinstance(meta.get("bytes"), int) and meta["bytes"] >= 0
                    and isinstance(meta.get("sha256"), str)):
                raise DesignError(f"files[{rel!r}]", "needs an integer 'bytes' and a "
                                  "'sha256' string")
        for key in ("version", "golden"):
            v = m.get(key, 0 if key == "golden" else None)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "version"
                                                                     else 0):
                raise DesignError(key, f"must be a {'positive' if key == 'version' else 'non-negative'}"
                                  f" integer, got {v!r}")
        ov = m.get("overlay")
        if ov is not None and not isinstance(ov, dict):
            raise DesignError("overlay", f"must be an object or null, got {ov!r}")
    except DesignError as e:
        raise PackageError(f"{mp}: {e}; the package is damaged, export it again") from None
    root = mp.parent
    for rel in files:
        safe_member(root, rel)
    for key in ("bit", "hwh"):
        rel = (ov or {}).get(key)
        if rel is not None and rel not in files:
            raise PackageError(f"{mp}: overlay.{key} {rel!r} is not one of the package's "
                               "checked files")


def _load_manifest(root: Path) -> dict:
    mp = root / MANIFEST
    if not root.is_dir():
        raise PackageError(f"{root}: no such package folder")
    if not mp.is_file():
        raise PackageError(f"{mp}: missing; is {root} a package written by `codesign export`?")
    try:
        m = json.loads(mp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackageError(f"{mp}: not valid JSON ({e}); the package is damaged, export it again")
    except RecursionError:
        raise PackageError(f"{mp}: JSON nested too deeply; the package is damaged") from None
    except OSError as e:
        raise PackageError(f"{mp}: cannot read ({e.strerror or e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise PackageError(f"{mp}: not a pynq-codesign package manifest")
    if m.get("schema_version") != PACKAGE_SCHEMA:
        raise PackageError(f"{mp}: package schema {m.get('schema_version')!r}; this version "
                           f"reads {PACKAGE_SCHEMA}")
    if m.get("manifest_sha256") != _manifest_digest(m):
        raise PackageError(f"{mp}: the manifest's own checksum does not match; it was edited "
                           "or damaged")
    _check_manifest_shape(mp, m)
    return m


def verify_files(root: Path, manifest: dict) -> None:
    """Check every file's size and SHA-256 against the manifest (PackageError names it)."""
    for rel, meta in manifest["files"].items():
        p = safe_member(root, rel)
        if not p.is_file():
            raise PackageError(f"{p}: listed in the manifest but missing")
        if p.stat().st_size != meta["bytes"]:
            raise PackageError(f"{p}: {p.stat().st_size} bytes, the manifest says "
                               f"{meta['bytes']}; the file is damaged or was replaced")
        try:
            digest = sha256_file(p)
        except OSError as e:
            raise PackageError(f"{p}: cannot read ({e.strerror or e})") from None
        if digest != meta["sha256"]:
            raise PackageError(f"{p}: SHA-256 does not match the manifest; the file is "
                               "damaged or was changed after export")


def load_package(path: str | Path, verify: bool = True) -> Package:
    """Open and verify a package; :class:`PackageError` names the first wrong file."""
    root = Path(path).resolve()
    m = _load_manifest(root)
    if verify:
        verify_files(root, m)
    try:
        design = Design.from_dict(json.loads((root / DESIGN_FILE).read_text()))
    except DesignError as e:
        raise PackageError(f"{root / DESIGN_FILE}: {e}")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise PackageError(f"{root / DESIGN_FILE}: cannot read ({e})")
    if m.get("hardware_id") != design.overlay.hardware_id_hex:
        raise PackageError(f"{root / MANIFEST}: hardware ID {m.get('hardware_id')} does not "
                           f"match design.json's overlay ({design.overlay.hardware_id_hex})")
    try:
        layout = program_layout(design)
    except WireError as e:
        raise PackageError(f"{root / DESIGN_FILE}: {e}")
    try:
        params = np.fromfile(root / PARAMS_FILE, dtype=np.uint8)
    except OSError as e:
        raise PackageError(f"{root / PARAMS_FILE}: cannot read ({e.strerror or e})") from None
    if params.size != layout.params.size:
        raise PackageError(f"{root / PARAMS_FILE}: {params.size} bytes, the design needs "
                           f"{layout.params.size}")
    program = Program(params, layout.passes, layout.weight_offsets, layout.bias_offsets)
    golden = []
    oc, oh, ow = design.network.output_shape
    ishape = (design.network.input_height, design.network.input_width,
              design.network.input_channels)
    for k in range(int(m.get("golden", 0))):
        pin, pout = root / f"golden/in_{k}.npy", root / f"golden/out_{k}.npy"
        try:
            x = np.load(pin, allow_pickle=False).astype(np.int64)
            y = np.load(pout, allow_pickle=False).astype(np.int64)
        except (OSError, ValueError) as e:
            raise PackageError(f"{pin.parent}: cannot read golden vector {k} ({e})")
        if x.shape != ishape:
            raise PackageError(f"{pin}: shape {x.shape}, the design's input is {ishape}")
        if y.shape != (oh, ow, oc):
            raise PackageError(f"{pout}: shape {y.shape}, the design's output is {(oh, ow, oc)}")
        golden.append((x, y))
    return Package(root, m, design, program, tuple(golden))

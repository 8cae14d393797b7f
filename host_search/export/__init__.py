"""Export: a trained run folder to a deployment package.

``codesign export RUN --out PKG [--golden K]`` writes, through
:func:`pynq_codesign.package.write_package`:

* ``design.json``: the run's design point with its calibrated per-layer formats;
* ``params.bin``: the integer weights (batch norm folded, quantised with
  :func:`pynq_codesign.fixedpoint.quantize` into each layer's weight format) and biases
  (at the accumulator's scale, :func:`pynq_codesign.fixedpoint.bias_format`), packed with
  the pass descriptors by :func:`pynq_codesign.wire.build_program`;
* ``golden/in_K.npy``, ``golden/out_K.npy``: input codes of validation images of the run's
  data set (when the folder is still there; otherwise frames of the built-in synthetic
  generator, seed 0) and the output codes the emulator computes for them;
* ``model.onnx`` (float) and ``model_quant.onnx`` (QONNX ``Quant`` nodes);
* the manifest (SHA-256 of every file) with the run's labelled validation IoUs and the
  split (which sub-categories training held out).

It refuses a network that does not fit its overlay (:func:`~pynq_codesign.design.
require_fits`), fewer than one golden vector, and an ``--out`` that is not new or empty or
lies inside the run folder; the package is staged and renamed into place.

Before writing, the export checks that the emulator's outputs equal the integer-exact
torch network's bit for bit on every golden input (a mismatch is a bug and stops it).
An overlay is added later by ``codesign build-overlay`` (``package.add_files``).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pynq_codesign.design import Design, require_fits
from pynq_codesign.errors import CodesignError
from pynq_codesign.fsutil import OutputError, check_new_output
from pynq_codesign.package import Package, write_package
from pynq_codesign.platform.sim.emulator import run_program
from pynq_codesign.prepost import preprocess, quantize_input
from pynq_codesign.wire import Program, build_program

from ..nn.model import DetectionNet, integer_params
from .onnx_float import build_float_onnx
from .onnx_quant import build_quant_onnx

FLOAT_ONNX = "model.onnx"
QUANT_ONNX = "model_quant.onnx"


class ExportError(CodesignError):
    """A run that cannot be exported; the message says why and what to do."""


@dataclass(frozen=True)
class Golden:
    inputs: list[np.ndarray]         # input codes [H, W, C] (int64)
    source: str                      # where the images came from


def _dataset_images(metrics: dict, design: Design, k: int) -> tuple[list[np.ndarray], str]:
    """Up to ``k`` validation images of the run's data set (BGR uint8), if it is there."""
    data = (metrics.get("data") or {}).get("data")
    if not data or not Path(data).is_dir() or k == 0:
        return [], ""
    from ..data import DataError, load_dataset, read_image
    try:
        ds = load_dataset(data)
    except DataError:
        return [], ""
    wanted = list((metrics.get("data") or {}).get("val_keys") or [])
    by_key = {s.key: s for s in ds.samples}
    samples = [by_key[key] for key in wanted if key in by_key] or list(ds.samples)
    images = []
    for s in samples:
        try:
            images.append(read_image(s))
        except CodesignError:
            continue
        if len(images) == k:
            break
    return images, f"validation images of {data}"


def _synthetic_images(k: int) -> list[np.ndarray]:
    """``k`` frames of the built-in generator (seed 0), decoded as OpenCV reads them."""
    import cv2
    from ..data.synth import frames
    return [cv2.imdecode(np.frombuffer(fr.jpeg, np.uint8), cv2.IMREAD_COLOR)
            for fr in frames(max(k, 1), 0)][:k]


def golden_inputs(design: Design, metrics: dict, k: int) -> Golden:
    """Input codes for ``k`` golden vectors (real images where possible)."""
    images, source = _dataset_images(metrics, design, k)
    if len(images) < k:
        images += _synthetic_images(k - len(images))
        source = (source + " + " if source else "") + \
            "frames of the built-in synthetic generator (seed 0)"
    net, r = design.network, design.overlay.rounding
    return Golden([quantize_input(preprocess(img, net), net, r) for img in images], source)


def integer_exact_outputs(model: DetectionNet, codes: np.ndarray) -> np.ndarray:
    """Output codes ``[GH, GW, A*5]`` of the integer-exact torch network for input codes."""
    import copy
    m = copy.deepcopy(model).double().eval()
    m.quantized = True
    fin = model.network.input_format
    x = torch.from_numpy((codes * fin.scale).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        y = m(x)[0].permute(1, 2, 0).numpy()
    fout = model.network.formats()[-1][2]
    q = y / fout.scale
    if not np.array_equal(q, np.round(q)):
        raise ExportError("internal: the integer-exact network gave off-grid outputs")
    return q.astype(np.int64)


def build_package_parts(model: DetectionNet) -> Program:
    """The packed parameter program of a folded, calibrated model."""
    return build_program(model.design, integer_params(model))


def export_run(run_dir: str | Path, out: str | Path, golden: int = 2) -> Package:
    """Export the run folder ``run_dir`` as a package in ``out`` (new or empty)."""
    from ..train import TrainError, load_run
    if isinstance(golden, bool) or not isinstance(golden, int) or golden < 1:
        raise ExportError(f"--golden must be at least 1 (the self-test and the overlay "
                          f"build check the package with them), got {golden!r}")
    try:
        out = check_new_output(out, [run_dir])
    except OutputError as e:
        raise ExportError(str(e)) from None
    try:
        run = load_run(run_dir)
    except TrainError as e:
        raise ExportError(str(e))
    model, design = run.model, run.design
    require_fits(design, "export")
    program = build_package_parts(model)
    g = golden_inputs(design, run.metrics, golden)
    vectors = []
    for k, x in enumerate(g.inputs):
        y = run_program(program, x, design.overlay)
        if not np.array_equal(y, integer_exact_outputs(model, x)):
            raise ExportError(f"internal: golden vector {k}: the emulator and the "
                              "integer-exact network disagree; please report this")
        vectors.append((x, y))
    float_onnx = build_float_onnx(model)
    quant_onnx = build_quant_onnx(model)
    results = run.metrics.get("results", {})
    info = {
        "run": str(Path(run_dir).resolve()),
        "golden_source": g.source,
        "validation_iou": {k: results.get(k) for k in ("val_iou_float", "val_iou_fixed_point")},
        "validation_iou_labels": results.get("labels"),
        "validation_data": results.get("data_note"),
        "data_split": _data_split(run.metrics),
        "onnx": {FLOAT_ONNX: "float, batch norm folded; input NCHW float32 real values "
                              "(pre-processed); output the head [N, A*5, GH, GW]",
                 QUANT_ONNX: "QONNX Quant nodes (domain qonnx.custom_op.general); same "
                             "input and output conventions"},
    }
    return write_package(out, design, program, vectors,
                         {FLOAT_ONNX: float_onnx.SerializeToString(),
                          QUANT_ONNX: quant_onnx.SerializeToString()}, info)


def _data_split(metrics: dict) -> dict:
    """Which images training saw: the data set's folder name and the sub-categories it
    held out for validation (``bench --images`` says whether its images were held out)."""
    data = metrics.get("data") or {}
    return {"data_name": Path(data["data"]).name if data.get("data") else None,
            "val_subcategories": list(data.get("val_subcategories") or []),
            "hold_out": data.get("hold_out", "subcategory")}


def main(args: argparse.Namespace) -> int:
    """``codesign export RUN --out PKG [--golden K]``."""
    pkg = export_run(args.run, args.out, args.golden)
    info = pkg.manifest["info"]
    iou = info.get("validation_iou") or {}
    print(f"package {pkg.root}: {pkg.design.name}, hardware ID {pkg.manifest['hardware_id']}, "
          f"{pkg.program.params.size} bytes of parameters, {len(pkg.golden)} golden vectors "
          f"({info['golden_source']})")
    if iou.get("val_iou_fixed_point") is not None:
        print(f"validation mean IoU ({info.get('validation_data')}): float "
              f"{iou['val_iou_float']:.3f}, fixed point {iou['val_iou_fixed_point']:.3f}")
    print(f"files: {', '.join(sorted(pkg.manifest['files']))}")
    return 0


__all__ = ["ExportError", "build_float_onnx", "build_quant_onnx", "export_run", "golden_inputs",
           "main"]

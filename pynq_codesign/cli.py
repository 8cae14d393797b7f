"""The ``codesign`` command.

Every sub-command is declared here (its options are the contract the docs and tests
use) and runs a ``main(args) -> int`` function in the module that owns the work. Host
sub-commands import ``host_search`` lazily, so the board can run ``codesign`` without
torch. An error the user can fix (:class:`~pynq_codesign.errors.CodesignError`) prints
one line and exits 2; a ``--json`` command prints its JSON on stdout and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import CodesignError

DESIGN_HELP = "a design JSON file or a reference design name (dnn-a, dnn-b, dnn-c)"

# sub-command -> "module:function" that runs it
HANDLERS = {
    "designs": "pynq_codesign.cli:designs_main",
    "estimate": "host_search.qos_report:main",
    "data synth": "host_search.data.synth:main",
    "train": "host_search.train:main",
    "export": "host_search.export:main",
    "build-overlay": "host_search.overlay_build:main",
    "board selftest": "pynq_codesign.driver:selftest_main",
    "detect": "pynq_codesign.pipeline:main",
    "bench": "pynq_codesign.bench:main",
    "board serve": "pynq_codesign.server:serve_main",
    "search": "host_search.search:main",
    "demo": "host_search.demo:main",
}


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", action="store_true",
                   help="run on the simulated board instead of a real PYNQ board")
    p.add_argument("--board-seed", type=int, default=0,
                   help="seed of the simulated board's hidden physical parameters")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds before a transfer or the core counts as hung")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="codesign", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("designs", help="list the reference designs and their published figures")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("estimate", help="analytical QoS estimate of a design")
    p.add_argument("design", help=DESIGN_HELP)
    p.add_argument("--device", help="estimate on this device instead of the design's")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser("data", help="data sets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("synth", help="write the built-in synthetic UAV-like data set")
    q.add_argument("--out", required=True, help="folder to write (DAC-SDC layout)")
    q.add_argument("--n", type=int, default=200, help="number of images")
    q.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train (float, then quantisation-aware) a design")
    p.add_argument("design", help=DESIGN_HELP)
    p.add_argument("--data", required=True, help="data set folder (DAC-SDC layout)")
    p.add_argument("--epochs", type=int, default=10, help="float epochs")
    p.add_argument("--qat-epochs", type=int, default=None,
                   help="quantisation-aware epochs (default: half of --epochs, at least 1)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--fast", action="store_true",
                   help="fast-train mode (reduced resolution, cached tensors)")

    p = sub.add_parser("export", help="write the deployment package of a trained run")
    p.add_argument("run", help="run folder written by `codesign train`")
    p.add_argument("--out", required=True, help="package folder")
    p.add_argument("--golden", type=int, default=2, help="golden input/output vectors")

    p = sub.add_parser("build-overlay", help="generate and (with Vivado) build the overlay")
    p.add_argument("package", help="deployment package folder")
    p.add_argument("--board", default="pynq-z1")
    p.add_argument("--out", help="project folder (default: PACKAGE/overlay-build)")

    p = sub.add_parser("board", help="board tools")
    bsub = p.add_subparsers(dest="board_command", required=True, metavar="ACTION")
    q = bsub.add_parser("selftest", help="load a package and check its golden vectors")
    q.add_argument("package")
    _board_args(q)

    p = sub.add_parser("detect", help="run detection on images or a video")
    p.add_argument("package")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--video", help="video file")
    p.add_argument("--out", required=True, help="folder for annotated images and results XML")
    _board_args(p)

    p = sub.add_parser("bench", help="benchmark FPS, latency, power and energy")
    p.add_argument("package")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--images", help="folder of labelled images (default: the golden inputs)")
    p.add_argument("--power", default="auto",
                   help="power source: auto, model, rails, meter:PATH (serial device or CSV)")
    p.add_argument("--json", action="store_true")
    _board_args(p)

    # --- search (co-search issue): `codesign search ...` and `codesign search report RUN`

    # --- board serve (closed-loop issue)

    # --- demo (first-hour issue)
    return ap


def _handler_key(args: argparse.Namespace) -> str:
    if args.command == "data":
        return f"data {args.data_command}"
    if args.command == "board":
        return f"board {args.board_command}"
    return args.command


def designs_main(args: argparse.Namespace) -> int:
    """List the reference designs with their structure and published figures."""
    import json

    from .design import describe_layers
    from .designs import published, published_names, reference_design, reference_names
    rows = []
    for name in reference_names():
        d = reference_design(name)
        rows.append({"name": name, "description": d.description,
                     "bundles": describe_layers(d.network), "macs": d.network.macs(),
                     "params": d.network.params(),
                     "hardware_id": d.overlay.hardware_id_hex,
                     "published": [{"citation": c, **r.to_dict()} for c, r in published(name)]})
    others = {n: [{"citation": c, **r.to_dict()} for c, r in published(n)]
              for n in published_names() if n not in reference_names()}
    if args.json:
        print(json.dumps({"designs": rows, "published": others}, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']}: {r['description']}")
        print(f"  {r['macs'] / 1e6:.1f} M MACs, {r['params']} parameters, "
              f"hardware ID {r['hardware_id']}")
        for i, b in enumerate(r["bundles"]):
            print(f"  bundle {i}: {b}")
        for c, rec in published(r["name"]):
            print(f"  {rec.summary()}  -- {c}")
    for n in others:
        for c, rec in published(n):
            print(f"{n}: {rec.summary()}  -- {c}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = HANDLERS[_handler_key(args)]
    mod_name, fn_name = target.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
        return int(fn(args) or 0)
    except CodesignError as e:
        print(f"codesign: error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "onnx", "onnxruntime", "qonnx"):
            print(f"codesign: error: `codesign {args.command}` runs on the host and needs "
                  f"{e.name}: pip install '.[host]'", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

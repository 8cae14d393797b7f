"""The ``codesign`` command.

Every sub-command is declared here (its options are the contract the docs and tests
use) and runs a ``main(args) -> int`` function in the module that owns the work. Host
sub-commands import ``host_search`` lazily, so the board can run ``codesign`` without
torch. An error the user can fix (:class:`~pynq_codesign.errors.CodesignError`) prints
one line and exits 2 (:data:`~pynq_codesign.errors.EXIT_CODES` lists every status); a
``--json`` command prints its JSON on stdout and nothing else. Numbers are checked here,
at the option (finite, positive, non-negative), before any work starts; SIGTERM cleans up
as Ctrl-C does.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import math
import signal
import sys

from . import __version__
from .errors import EXIT_CODES, EXIT_TERMINATED, CodesignError, Terminated

DESIGN_HELP = "a design JSON file or a reference design name (dnn-a, dnn-b, dnn-c)"
DESCRIPTION = ("Co-design a detection DNN and its FPGA accelerator for PYNQ boards: estimate, "
               "train, export, build the overlay, run and benchmark on a board or the "
               "simulated board.")
EPILOG = "exit status:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES) + \
    "\n\n`codesign COMMAND --help` shows a command's options and their defaults."

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
    "score": "pynq_codesign.score:main",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default shown after its help (not for required options and flags);
    the epilog's layout kept."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if (action.option_strings and not action.required and action.default is not None
                and action.default is not False and action.default != argparse.SUPPRESS
                and "default" not in h):       # a help that states its default already
            h += " (default: %(default)s)"
        return h


class Parser(argparse.ArgumentParser):
    """Every (sub-)parser shows defaults in its help."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message: str):
        """A bad option is one line too (the usage is one ``--help`` away)."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(kind, lo: float, lo_ok: bool, what: str):
    """An argparse type: ``kind`` (int or float), finite, ``> lo`` (``>= lo`` if lo_ok)."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(v) or (v < lo if lo_ok else v <= lo):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return v
    parse.__name__ = what
    return parse


positive_float = _number(float, 0.0, False, "a finite number greater than 0")
positive_int = _number(int, 0, False, "an integer of 1 or more")
nonneg_int = _number(int, 0, True, "an integer of 0 or more")


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", action="store_true",
                   help="run on the simulated board instead of a real PYNQ board")
    p.add_argument("--board-seed", type=nonneg_int, default=0,
                   help="seed of the simulated board's hidden physical parameters")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds before a transfer or the core counts as hung (finite, > 0)")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="codesign", description=DESCRIPTION, epilog=EPILOG)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            parser_class=Parser)

    p = sub.add_parser("designs", help="list the reference designs and their published figures")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser("estimate", help="analytical QoS estimate of a design")
    p.add_argument("design", help=DESIGN_HELP)
    p.add_argument("--device", help="estimate on this device (a name such as pynq-z2) instead "
                                    "of the design's")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = sub.add_parser("data", help="data sets")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("synth", help="write the built-in synthetic UAV-like data set")
    q.add_argument("--out", required=True, help="folder to write (DAC-SDC layout)")
    q.add_argument("--n", type=positive_int, default=200, help="number of images")
    q.add_argument("--seed", type=nonneg_int, default=0, help="generator seed")

    p = sub.add_parser("train", help="train (float, then quantisation-aware) a design")
    p.add_argument("design", help=DESIGN_HELP)
    p.add_argument("--data", required=True, help="data set folder (DAC-SDC layout)")
    p.add_argument("--epochs", type=nonneg_int, default=10, help="float epochs")
    p.add_argument("--qat-epochs", type=nonneg_int, default=None,
                   help="quantisation-aware epochs (default: a sixth of --epochs, at least 1)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs); the same "
                                                "command on the same folder resumes")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of weights and shuffling")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per step")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="float learning rate")
    p.add_argument("--fast", action="store_true",
                   help="fast-train mode (half the input resolution, cached tensors)")
    p.add_argument("--hold-out", choices=("subcategory", "category"), default="subcategory",
                   help="validation split: unseen sub-categories of categories that keep "
                        "training examples (default), or whole unseen categories")
    p.add_argument("--val", metavar="SUBCATS", default=None,
                   help="validate on exactly these sub-categories (comma-separated, e.g. "
                        "boat1,person2) instead of a --hold-out split")

    p = sub.add_parser("export", help="write the deployment package of a trained run")
    p.add_argument("run", help="run folder written by `codesign train`")
    p.add_argument("--out", required=True, help="package folder (new or empty)")
    p.add_argument("--golden", type=positive_int, default=2,
                   help="golden input/output vectors (at least 1: selftest needs one)")

    p = sub.add_parser("build-overlay", help="generate and (with Vivado) build the overlay")
    p.add_argument("package", help="deployment package folder")
    p.add_argument("--board", default="pynq-z1", help="board whose overlay flow to use")
    p.add_argument("--out", help="project folder, outside the package (default: "
                                 "PACKAGE-overlay-build beside it)")

    p = sub.add_parser("board", help="board tools")
    bsub = p.add_subparsers(dest="board_command", required=True, metavar="ACTION")
    q = bsub.add_parser("selftest", help="load a package and check its golden vectors")
    q.add_argument("package", help="deployment package folder")
    _board_args(q)

    p = sub.add_parser("detect", help="run detection on images or a video")
    p.add_argument("package", help="deployment package folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images (DAC-SDC XML labels beside them are "
                                      "scored)")
    src.add_argument("--video", help="video file")
    p.add_argument("--out", required=True, help="new or empty folder for annotated images and "
                                                "results XML (not inside the input)")
    _board_args(p)

    p = sub.add_parser("bench", help="benchmark FPS, latency, power and energy")
    p.add_argument("package", help="deployment package folder")
    p.add_argument("--frames", type=positive_int, default=50, help="frames measured")
    p.add_argument("--warmup", type=nonneg_int, default=2, help="frames run before measuring")
    p.add_argument("--images", help="folder of labelled images (default: the golden inputs)")
    p.add_argument("--power", default="auto",
                   help="power source: auto, model, rails, meter:PATH (serial device or CSV)")
    p.add_argument("--json", action="store_true", help="one JSON object (QoS record) on stdout")
    _board_args(p)

    p = sub.add_parser("score", help="mean IoU of a results folder against its ground truth")
    p.add_argument("pred", help="results folder: one DAC-SDC XML per image (codesign detect "
                                "--out, or a contest entry)")
    p.add_argument("gt", help="ground-truth folder: the data set (one XML beside each image)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    # --- search (co-search issue): `codesign search ...` and `codesign search report RUN`
    p = sub.add_parser("search", help="co-search a network and its accelerator "
                                      "(`codesign search report RUN` redraws a report)")
    p.add_argument("action", nargs="*", metavar="report RUN",
                   help="`report RUN`: redraw RUN's report from its journal")
    p.add_argument("--device", default="pynq-z1")
    p.add_argument("--data", help="data set folder (DAC-SDC layout)")
    p.add_argument("--target-fps", type=float, help="frames per second the design must reach")
    p.add_argument("--max-power", type=float, default=None, help="watts the board may draw")
    p.add_argument("--budget", type=int,
                   help="training budget in image-epochs (training images x epochs)")
    p.add_argument("--out", help="run folder (journal, report, packages)")
    p.add_argument("--resume", metavar="RUN", help="continue the search in RUN")
    p.add_argument("--strategy", default="scd", choices=("scd", "random", "topdown"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--address", help="Ray cluster address (with --executor ray)")
    p.add_argument("--workers", type=int, default=2, help="local training processes")
    p.add_argument("--sim-board", type=int, default=None, metavar="SEED",
                   help="measure candidates on an in-process simulated board of this seed")
    p.add_argument("--board", action="append", metavar="URL",
                   help="a board service to measure on (repeatable)")
    p.add_argument("--token-file", help="token file of the board services")
    p.add_argument("--proto-epochs", type=int, default=1, help="QoR prototype epochs")
    p.add_argument("--cand-epochs", type=int, default=3, help="candidate float epochs")
    p.add_argument("--cand-qat-epochs", type=int, default=1, help="candidate QAT epochs")
    p.add_argument("--final-epochs", type=int, default=6, help="winner float epochs")
    p.add_argument("--final-qat-epochs", type=int, default=2, help="winner QAT epochs")
    p.add_argument("--bundle-layers", type=int, default=3,
                   help="the most convolutions in an enumerated bundle")
    p.add_argument("--batch", type=int, default=2, help="candidates trained per step")
    p.add_argument("--input", default="160x360", metavar="HxW",
                   help="network input before the search's resize knob (default: the "
                        "paper's 160x360)")

    # --- board serve (closed-loop issue)
    q = bsub.add_parser("serve", help="serve the board over HTTP: uploads, benchmark jobs, "
                                      "live QoS stream, dashboard")
    _board_args(q)
    q.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int, default=8600, help="TCP port (0: any free one)")
    q.add_argument("--token-file", required=True,
                   help="bearer token file (created with mode 600 if missing)")
    q.add_argument("--data-dir", help="where designs and job results are kept "
                                      "(default ~/.local/share/pynq-codesign/...)")
    q.add_argument("--device", default="pynq-z1", help="the board's device profile")
    q.add_argument("--power", default="auto",
                   help="power source of benchmarks: auto, model, rails, meter:PATH")
    q.add_argument("--max-streams", type=int, default=8,
                   help="QoS streams served at once (each holds one thread)")

    # --- demo (first-hour issue)
    p = sub.add_parser("demo", help="the main job end to end: data, simulated board service, "
                                    "closed-loop search, deploy, benchmark, detect, report")
    p.add_argument("--quick", action="store_true",
                   help="the same path with a tiny budget (about two minutes)")
    p.add_argument("--out", default="demo-out",
                   help="folder for everything the demo writes (its demo parts are replaced)")
    p.add_argument("--seed", type=nonneg_int, default=1, help="seed of the data set and search")
    p.add_argument("--board-seed", type=nonneg_int, default=3,
                   help="seed of the simulated board's hidden physical parameters")
    p.add_argument("--target-fps", type=positive_float, default=None,
                   help="FPS the search must reach (default: the plan's)")
    p.add_argument("--budget", type=positive_int, default=None,
                   help="search budget in image-epochs (default: the plan's)")
    p.add_argument("--workers", type=positive_int, default=2, help="local training processes")
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


#: OS errors that come from the user's files and folders (not from a bug): one line.
USER_OS_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                  errno.ENOENT, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG,
                  errno.ELOOP, errno.ENOTEMPTY, errno.EXDEV}


def _error(msg: str) -> None:
    """Print ``msg`` as the one ``codesign: error:`` line."""
    print("codesign: error: " + " ".join(str(msg).split()), file=sys.stderr)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:          # --help, --version, a bad option (one line, exit 2)
        return e.code if isinstance(e.code, int) else 2
    target = HANDLERS[_handler_key(args)]
    mod_name, fn_name = target.split(":")
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:           # not the main thread (a test calling main): no handler
        previous = None
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
        return int(fn(args) or 0)
    except CodesignError as e:
        _error(e)
        return e.exit_code
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("torch", "onnx", "onnxruntime", "qonnx"):
            _error(f"`codesign {args.command}` runs on the host and needs {e.name}: "
                   "pip install '.[host]'")
            return 2
        raise
    except OSError as e:
        if e.errno not in USER_OS_ERRORS or isinstance(e, BrokenPipeError):
            raise
        where = e.filename if e.filename is not None else "a file or folder"
        _error(f"{where}: {e.strerror or e}; check the path and its permissions")
        return 2
    except Terminated:
        print("codesign: terminated; outputs are left as they were", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

"""The design point: the schema every stage of pynq-codesign reads.

A design point has two halves:

* :class:`Overlay`, what synthesis fixes: device, clock, the stage chain of the bundle
  engine with each stage's parallelism, the datapath widths and rounding, the largest
  sizes the buffers hold, the weight path. Its hash is the *hardware ID* compiled into
  a read-only register of the IP; a package runs only on an overlay with the same ID.
* :class:`Network`, what runs on an overlay at run time: input size, bundles of layers,
  per-layer fixed-point formats (the scaling), pre-processing and box decoding.

:func:`check_fits` says whether a network runs on an overlay and names every part that
does not. :func:`plan_passes` maps each bundle onto engine passes (one invocation of the
engine, one DMA transfer each way). JSON in and out with a schema version; every bad
value raises :class:`DesignError` naming the field and the reason.

Layer semantics (the accelerator, the emulator and the torch builder all follow them):

* ``dw``    depthwise 3x3 convolution, padding 1, stride 1 or 2, bias, activation;
* ``pw``    pointwise 1x1 convolution, bias, activation;
* ``conv3`` full 3x3 convolution, padding 1, stride 1 or 2, bias, activation;
* ``pool``  2x2 max-pool, stride 2 (odd rows/columns at the edge are dropped).

A convolution accumulates ``in_code * w_code`` exactly, adds the bias (stored at the
accumulator's scale, :func:`fixedpoint.bias_format`), applies the activation (ReLU6
clamps at 6.0 at the accumulator's scale) and requantises into the layer's output
format with the overlay's rounding and saturation.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from .devices import UnknownDevice, device_names, load_device
from .errors import CodesignError
from .fixedpoint import FixedFormat, Rounding

SCHEMA_VERSION = 1

LAYER_TYPES = ("dw", "pw", "conv3", "pool")
CONV_TYPES = ("dw", "pw", "conv3")
ACTIVATIONS = ("none", "relu", "relu6")
WEIGHT_PATHS = ("m_axi",)
RESIZE_METHODS = ("bilinear", "area", "nearest")
COLOR_ORDERS = ("rgb", "bgr")


class DesignError(CodesignError, ValueError):
    """A design point that is malformed: ``field`` names where, ``reason`` says what."""

    def __init__(self, field_path: str, reason: str):
        self.field = field_path
        self.reason = reason
        super().__init__(f"{field_path}: {reason}")


# ---------------------------------------------------------------------------
# Small helpers for validation with field paths.
# ---------------------------------------------------------------------------

def _get(d: Any, key: str, path: str, default: Any = ...) -> Any:
    if not isinstance(d, dict):
        raise DesignError(path, f"must be a JSON object, got {type(d).__name__}")
    if key not in d:
        if default is ...:
            raise DesignError(f"{path}.{key}" if path else key, "missing")
        return default
    return d[key]


def check_keys(d: Any, path: str, known: tuple[str, ...] | frozenset[str],
               what: str = "key") -> None:
    """Refuse a key of ``d`` that the schema does not know (a typo must not be ignored).

    The error names the key and, when there is one, the known key it is closest to.
    """
    if not isinstance(d, dict):
        raise DesignError(path or "(top level)", f"must be a JSON object, got {type(d).__name__}")
    for key in d:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; known {what}s: {', '.join(sorted(known))}"
            raise DesignError(f"{path}.{key}" if path else str(key), f"unknown {what}{hint}")


# The keys each object of a design may have (anything else is refused, not ignored).
DESIGN_KEYS = ("schema_version", "name", "description", "overlay", "network")
OVERLAY_KEYS = ("device", "clock_mhz", "weight_bits", "feature_bits", "bias_bits", "acc_bits",
                "rounding", "narrow_range", "stages", "max_channels", "max_width",
                "max_row_elems", "band_rows", "max_layer_weights", "weight_path")
STAGE_KEYS = ("kind", "pe", "simd", "row_elems", "weight_words")
FORMAT_KEYS = ("bits", "int_bits", "signed")
NETWORK_KEYS = ("input", "input_format", "weight_format", "feature_format", "bundles",
                "preprocess", "decode")
INPUT_KEYS = ("channels", "height", "width")
BUNDLE_KEYS = ("layers",)
LAYER_KEYS = ("type", "out_channels", "stride", "activation", "weight_format", "out_format")
PREPROCESS_KEYS = ("source_size", "color_order", "resize", "mean", "std")
DECODE_KEYS = ("anchors", "centre_range")
MAX_CENTRE_RANGE = 4.0      # cells: Decode.centre_range


def _int(v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise DesignError(path, f"must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise DesignError(path, f"must be at least {lo}, got {v}")
    if hi is not None and v > hi:
        raise DesignError(path, f"must be at most {hi}, got {v}")
    return v


def _num(v: Any, path: str, lo: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise DesignError(path, f"must be a number, got {v!r}")
    if lo is not None and v < lo:
        raise DesignError(path, f"must be at least {lo}, got {v}")
    return float(v)


def _choice(v: Any, path: str, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise DesignError(path, f"must be one of {', '.join(choices)}, got {v!r}")
    return v


def _fmt(d: Any, path: str, max_bits: int | None = None) -> FixedFormat:
    check_keys(d, path, FORMAT_KEYS)
    bits = _int(_get(d, "bits", path), f"{path}.bits", 2, max_bits or 32)
    int_bits = _int(_get(d, "int_bits", path), f"{path}.int_bits", -32, 64)
    signed = _get(d, "signed", path, True)
    if not isinstance(signed, bool):
        raise DesignError(f"{path}.signed", f"must be true or false, got {signed!r}")
    return FixedFormat(bits, int_bits, signed)


# ---------------------------------------------------------------------------
# Overlay: the synthesis-time half.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One stage of the bundle engine's dataflow chain.

    ``pe``: channels (dw, pool) or output channels (pw, conv3) computed in parallel;
    ``simd``: input channels per output channel computed in parallel (pw, conv3).
    A dw stage has ``pe * 9`` multipliers, pw ``pe * simd``, conv3 ``pe * simd * 9``.

    Capacities of the stage's own memories (``None``: the overlay-wide maximum):
    ``row_elems``: elements (width x channels, channels padded to the stage's words:
    :func:`stage_row_elems`) of one input row its line / row
    buffer holds; ``weight_words``: folded weight words its weight memory holds (one word
    is the block the stage reads per cycle, see :func:`weight_words`). Sizing each stage for
    the layers it runs keeps the BRAM of a chain within a small device.
    """

    kind: str
    pe: int = 1
    simd: int = 1
    row_elems: int | None = None
    weight_words: int | None = None

    @property
    def multipliers(self) -> int:
        return stage_multipliers(self.kind, self.pe, self.simd)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind != "pool":
            d["pe"] = self.pe
        if self.kind in ("pw", "conv3"):
            d["simd"] = self.simd
        if self.row_elems is not None:
            d["row_elems"] = self.row_elems
        if self.weight_words is not None and self.kind != "pool":
            d["weight_words"] = self.weight_words
        return d

    def row_capacity(self, overlay: "Overlay") -> int:
        """Elements of one input row this stage's memory holds."""
        return self.row_elems if self.row_elems is not None else overlay.max_row_elems


@dataclass(frozen=True)
class Overlay:
    """What synthesis fixes. Every field here goes into the hardware ID."""

    device: str = "pynq-z1"
    clock_mhz: float = 100.0
    weight_bits: int = 16            # weight datapath width (a layer may use fewer)
    feature_bits: int = 8            # feature-map datapath width (a layer may use fewer)
    bias_bits: int = 32
    acc_bits: int = 48               # accumulator width (the DSP48's P register)
    rounding: str = Rounding.HALF_EVEN.value
    narrow_range: bool = False
    stages: tuple[Stage, ...] = (Stage("dw", 8), Stage("pw", 16, 8), Stage("pool"))
    max_channels: int = 512
    max_width: int = 512
    max_row_elems: int = 16384       # width x channels of one row in any line/band buffer
    band_rows: int = 8               # rows per band: the tile of the row-band pipeline
    max_layer_weights: int = 196608  # weights of one layer held on chip at once
    weight_path: str = "m_axi"

    # --- derived -----------------------------------------------------------------
    @cached_property
    def hardware_id(self) -> int:
        """32-bit hash of the overlay half; compiled into the IP's read-only ID register."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)

    @property
    def hardware_id_hex(self) -> str:
        return f"0x{self.hardware_id:08x}"

    @property
    def stage_kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.stages)

    @property
    def multipliers(self) -> int:
        return sum(s.multipliers for s in self.stages)

    @property
    def rounding_mode(self) -> Rounding:
        return Rounding(self.rounding)

    def to_dict(self) -> dict:
        return {
            "device": self.device, "clock_mhz": self.clock_mhz,
            "weight_bits": self.weight_bits, "feature_bits": self.feature_bits,
            "bias_bits": self.bias_bits, "acc_bits": self.acc_bits,
            "rounding": self.rounding, "narrow_range": self.narrow_range,
            "stages": [s.to_dict() for s in self.stages],
            "max_channels": self.max_channels, "max_width": self.max_width,
            "max_row_elems": self.max_row_elems, "band_rows": self.band_rows,
            "max_layer_weights": self.max_layer_weights, "weight_path": self.weight_path,
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "overlay") -> "Overlay":
        check_keys(d, path, OVERLAY_KEYS)
        dev = _get(d, "device", path)
        if dev not in device_names():
            raise DesignError(f"{path}.device",
                              f"unknown device {dev!r}; known: {', '.join(device_names())}")
        device = load_device(dev)
        clock = _num(_get(d, "clock_mhz", path), f"{path}.clock_mhz", 1.0)
        if clock > device.max_clock_mhz:
            raise DesignError(f"{path}.clock_mhz",
                              f"{clock} MHz is above {dev}'s fabric limit {device.max_clock_mhz}")
        stages_raw = _get(d, "stages", path)
        if not isinstance(stages_raw, list) or not stages_raw:
            raise DesignError(f"{path}.stages", "must be a non-empty list of stages")
        stages = []
        for i, s in enumerate(stages_raw):
            p = f"{path}.stages[{i}]"
            check_keys(s, p, STAGE_KEYS)
            kind = _choice(_get(s, "kind", p), f"{p}.kind", LAYER_TYPES)
            pe = _int(_get(s, "pe", p, 1), f"{p}.pe", 1, 4096)
            simd = _int(_get(s, "simd", p, 1), f"{p}.simd", 1, 4096)
            rows = _get(s, "row_elems", p, None)
            words = _get(s, "weight_words", p, None)
            stages.append(Stage(kind, pe if kind != "pool" else 1,
                                simd if kind in ("pw", "conv3") else 1,
                                None if rows is None else _int(rows, f"{p}.row_elems", 1),
                                None if words is None or kind == "pool"
                                else _int(words, f"{p}.weight_words", 1)))
        ov = cls(
            device=dev, clock_mhz=clock,
            weight_bits=_int(_get(d, "weight_bits", path), f"{path}.weight_bits", 2, 18),
            feature_bits=_int(_get(d, "feature_bits", path), f"{path}.feature_bits", 2, 16),
            bias_bits=_int(_get(d, "bias_bits", path, 32), f"{path}.bias_bits", 8, 32),
            acc_bits=_int(_get(d, "acc_bits", path, 48), f"{path}.acc_bits", 16, 48),
            rounding=_choice(_get(d, "rounding", path, "half_even"), f"{path}.rounding",
                             tuple(r.value for r in Rounding)),
            narrow_range=bool(_get(d, "narrow_range", path, False)),
            stages=tuple(stages),
            max_channels=_int(_get(d, "max_channels", path), f"{path}.max_channels", 1, 8192),
            max_width=_int(_get(d, "max_width", path), f"{path}.max_width", 1, 8192),
            max_row_elems=_int(_get(d, "max_row_elems", path), f"{path}.max_row_elems", 1),
            band_rows=_int(_get(d, "band_rows", path, 8), f"{path}.band_rows", 2, 1024),
            max_layer_weights=_int(_get(d, "max_layer_weights", path),
                                   f"{path}.max_layer_weights", 1),
            weight_path=_choice(_get(d, "weight_path", path, "m_axi"), f"{path}.weight_path",
                                WEIGHT_PATHS),
        )
        return ov


# ---------------------------------------------------------------------------
# Network: the run-time half.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """One layer. ``out_channels`` is required for pw/conv3 and implied for dw/pool.

    ``weight_format`` / ``out_format`` override the network's defaults for this layer
    (the per-layer scaling training chooses).
    """

    type: str
    out_channels: int | None = None
    stride: int = 1
    activation: str = "relu"
    weight_format: FixedFormat | None = None
    out_format: FixedFormat | None = None

    def __post_init__(self) -> None:
        if self.type == "pool":     # pooling has no activation, weights or own format
            object.__setattr__(self, "activation", "none")

    @property
    def is_conv(self) -> bool:
        return self.type in CONV_TYPES

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": self.type}
        if self.type in ("pw", "conv3"):
            d["out_channels"] = self.out_channels
        if self.type in ("dw", "conv3") and self.stride != 1:
            d["stride"] = self.stride
        if self.is_conv:
            d["activation"] = self.activation
            if self.weight_format is not None:
                d["weight_format"] = self.weight_format.to_dict()
        if self.out_format is not None and self.is_conv:
            d["out_format"] = self.out_format.to_dict()
        return d

    def short(self) -> str:
        """``DW3(48)``-style name as the paper writes it (channels filled in by the caller)."""
        return {"dw": "DW3", "pw": "PW1", "conv3": "C3", "pool": "pool"}[self.type]


@dataclass(frozen=True)
class Bundle:
    layers: tuple[Layer, ...]

    def to_dict(self) -> dict:
        return {"layers": [lay.to_dict() for lay in self.layers]}


@dataclass(frozen=True)
class Preprocess:
    """How a camera frame becomes the network's input (the board does exactly the same)."""

    source_size: tuple[int, int] = (360, 640)      # (height, width) of the camera frames
    color_order: str = "rgb"                        # channel order the network expects
    resize: str = "area"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)   # on pixels scaled to 0..1
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def to_dict(self) -> dict:
        return {"source_size": list(self.source_size), "color_order": self.color_order,
                "resize": self.resize, "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class Decode:
    """Box decoding: the last layer gives, per grid cell, ``len(anchors) x 5`` channels.

    Channel ``a*5 + k`` of anchor ``a``: k=0..3 box offsets (tx, ty, tw, th), k=4
    confidence. The box is centred at ``((gx + sigmoid(tx)) / GW, (gy + sigmoid(ty)) / GH)``
    with size ``(aw * exp(tw), ah * exp(th))``, all relative to the image; the cell and
    anchor with the highest confidence give the single detected object.

    ``centre_range`` (cells, default 0.5) is how far from its cell's centre a cell may place
    the box centre: ``gx + 0.5 + centre_range * (2 * sigmoid(tx) - 1)`` (and the same in
    y). At 0.5 that is the formula above (the centre inside the cell); larger values let a
    cell beside the object's centre still place the box right (:meth:`centre_offset`).
    """

    anchors: tuple[tuple[float, float], ...] = ((0.04, 0.07), (0.10, 0.18))
    centre_range: float = 0.5

    @property
    def channels(self) -> int:
        return 5 * len(self.anchors)

    def to_dict(self) -> dict:
        d: dict = {"anchors": [list(a) for a in self.anchors]}
        if self.centre_range != 0.5:
            d["centre_range"] = self.centre_range
        return d

    def centre_offset(self, s):
        """The box centre's place in cells from the cell's corner for ``s = sigmoid(t)``
        (numpy or torch): ``s`` itself at ``centre_range`` 0.5, exactly as before."""
        if self.centre_range == 0.5:
            return s
        return 0.5 + self.centre_range * (2 * s - 1)

    def centre_sigmoid(self, offset):
        """The inverse of :meth:`centre_offset`: the ``sigmoid(t)`` that places the centre
        ``offset`` cells from the cell's corner (outside 0..1 where the range does not
        reach it; the caller clamps)."""
        return 0.5 + (offset - 0.5) / (2 * self.centre_range)


@dataclass(frozen=True)
class LayerShape:
    in_c: int
    in_h: int
    in_w: int
    out_c: int
    out_h: int
    out_w: int


@dataclass(frozen=True)
class Network:
    input_channels: int = 3
    input_height: int = 160
    input_width: int = 360
    bundles: tuple[Bundle, ...] = ()
    input_format: FixedFormat = FixedFormat(8, 3)
    weight_format: FixedFormat = FixedFormat(16, 2)
    feature_format: FixedFormat = FixedFormat(8, 4)
    preprocess: Preprocess = field(default_factory=Preprocess)
    decode: Decode = field(default_factory=Decode)

    # --- structure ---------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return [lay for b in self.bundles for lay in b.layers]

    def bundle_of_layer(self) -> list[int]:
        return [bi for bi, b in enumerate(self.bundles) for _ in b.layers]

    @property
    def resize_factor(self) -> float:
        """Network input height over the camera frame's height."""
        return self.input_height / self.preprocess.source_size[0]

    def shapes(self) -> list[LayerShape]:
        """Input and output shape of every layer, in order."""
        c, h, w = self.input_channels, self.input_height, self.input_width
        out = []
        for lay in self.layers:
            oc, oh, ow = layer_output(lay.type, c, h, w, lay.out_channels, lay.stride)
            out.append(LayerShape(c, h, w, oc, oh, ow))
            c, h, w = oc, oh, ow
        return out

    @property
    def output_shape(self) -> tuple[int, int, int]:
        s = self.shapes()[-1]
        return s.out_c, s.out_h, s.out_w

    def macs(self) -> int:
        """Multiply-accumulates per frame (bias additions and pooling not counted)."""
        total = 0
        for lay, s in zip(self.layers, self.shapes()):
            total += layer_macs(lay.type, s)
        return total

    def params(self) -> int:
        """Weights plus biases of every convolution (batch norm folded)."""
        return sum(layer_weights(lay.type, s) + (s.out_c if lay.is_conv else 0)
                   for lay, s in zip(self.layers, self.shapes()))

    # --- formats ---------------------------------------------------------------
    def formats(self) -> list[tuple[FixedFormat, FixedFormat | None, FixedFormat]]:
        """Per layer: (input format, weight format or None for pool, output format)."""
        out = []
        fin = self.input_format
        for lay in self.layers:
            if lay.is_conv:
                wf = lay.weight_format or self.weight_format
                of = lay.out_format or self.feature_format
            else:
                wf, of = None, fin          # pooling keeps its input's format
            out.append((fin, wf, of))
            fin = of
        return out

    def with_formats(self, weight_formats: list[FixedFormat | None],
                     out_formats: list[FixedFormat | None]) -> "Network":
        """A copy with per-layer formats set (None keeps the default)."""
        it = iter(zip(weight_formats, out_formats))
        bundles = []
        for b in self.bundles:
            new = []
            for lay in b.layers:
                wf, of = next(it)
                new.append(replace(lay, weight_format=wf if lay.is_conv else None,
                                   out_format=of if lay.is_conv else None))
            bundles.append(Bundle(tuple(new)))
        return replace(self, bundles=tuple(bundles))

    def to_dict(self) -> dict:
        return {
            "input": {"channels": self.input_channels, "height": self.input_height,
                      "width": self.input_width},
            "input_format": self.input_format.to_dict(),
            "weight_format": self.weight_format.to_dict(),
            "feature_format": self.feature_format.to_dict(),
            "bundles": [b.to_dict() for b in self.bundles],
            "preprocess": self.preprocess.to_dict(),
            "decode": self.decode.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, path: str = "network") -> "Network":
        check_keys(d, path, NETWORK_KEYS)
        inp = _get(d, "input", path, {"channels": 3, "height": 160, "width": 360})
        ip = f"{path}.input"
        check_keys(inp, ip, INPUT_KEYS)
        ch = _int(_get(inp, "channels", ip), f"{ip}.channels", 1, 8192)
        h = _int(_get(inp, "height", ip), f"{ip}.height", 1, 8192)
        w = _int(_get(inp, "width", ip), f"{ip}.width", 1, 8192)
        defaults = cls()
        in_fmt = _fmt(d["input_format"], f"{path}.input_format") if "input_format" in d \
            else defaults.input_format
        w_fmt = _fmt(d["weight_format"], f"{path}.weight_format") if "weight_format" in d \
            else defaults.weight_format
        f_fmt = _fmt(d["feature_format"], f"{path}.feature_format") if "feature_format" in d \
            else defaults.feature_format
        braw = _get(d, "bundles", path)
        if not isinstance(braw, list) or not braw:
            raise DesignError(f"{path}.bundles", "must be a non-empty list of bundles")
        bundles = []
        c, hh, ww = ch, h, w
        for bi, b in enumerate(braw):
            bp = f"{path}.bundles[{bi}]"
            check_keys(b, bp, BUNDLE_KEYS)
            lraw = _get(b, "layers", bp)
            if not isinstance(lraw, list) or not lraw:
                raise DesignError(f"{bp}.layers", "must be a non-empty list of layers")
            layers = []
            for li, lay in enumerate(lraw):
                lp = f"{bp}.layers[{li}]"
                check_keys(lay, lp, LAYER_KEYS)
                t = _choice(_get(lay, "type", lp), f"{lp}.type", LAYER_TYPES)
                oc = None
                if t in ("pw", "conv3"):
                    v = _get(lay, "out_channels", lp)
                    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                        raise DesignError(f"{lp}.out_channels",
                                          f"must be a positive integer, got {v!r}")
                    oc = v
                stride = _int(_get(lay, "stride", lp, 1), f"{lp}.stride", 1, 2)
                if stride != 1 and t not in ("dw", "conv3"):
                    raise DesignError(f"{lp}.stride", "only dw and conv3 layers take a stride")
                act = _choice(_get(lay, "activation", lp, "relu" if t != "pool" else "none"),
                              f"{lp}.activation", ACTIVATIONS)
                wf = _fmt(lay["weight_format"], f"{lp}.weight_format") \
                    if "weight_format" in lay else None
                of = _fmt(lay["out_format"], f"{lp}.out_format") if "out_format" in lay else None
                if t == "pool":
                    if hh < 2 or ww < 2:
                        raise DesignError(lp, f"a 2x2 pool on a {hh}x{ww} map leaves nothing")
                    hh, ww = hh // 2, ww // 2
                    act, wf, of = "none", None, None
                elif t in ("dw", "conv3"):
                    hh, ww = (hh - 1) // stride + 1, (ww - 1) // stride + 1
                c = oc if oc is not None else c
                layers.append(Layer(t, oc, stride, act, wf, of))
            bundles.append(Bundle(tuple(layers)))
        pre = _get(d, "preprocess", path, {})
        pp = f"{path}.preprocess"
        check_keys(pre, pp, PREPROCESS_KEYS)
        src = _get(pre, "source_size", pp, [360, 640])
        if not (isinstance(src, list) and len(src) == 2 and all(
                isinstance(x, int) and x > 0 for x in src)):
            raise DesignError(f"{pp}.source_size", f"must be [height, width], got {src!r}")
        mean = _get(pre, "mean", pp, [0.5, 0.5, 0.5])
        std = _get(pre, "std", pp, [0.25, 0.25, 0.25])
        for name, v in (("mean", mean), ("std", std)):
            if not (isinstance(v, list) and len(v) == ch and all(
                    isinstance(x, (int, float)) for x in v)):
                raise DesignError(f"{pp}.{name}", f"must be a list of {ch} numbers, got {v!r}")
        if any(s <= 0 for s in std):
            raise DesignError(f"{pp}.std", "every entry must be positive")
        prep = Preprocess(
            source_size=(src[0], src[1]),
            color_order=_choice(_get(pre, "color_order", pp, "rgb"), f"{pp}.color_order",
                                COLOR_ORDERS),
            resize=_choice(_get(pre, "resize", pp, "area"), f"{pp}.resize", RESIZE_METHODS),
            mean=tuple(float(x) for x in mean), std=tuple(float(x) for x in std))
        dec = _get(d, "decode", path, {})
        check_keys(dec, f"{path}.decode", DECODE_KEYS)
        anchors = _get(dec, "anchors", f"{path}.decode", [list(a) for a in Decode().anchors])
        if not (isinstance(anchors, list) and anchors and all(
                isinstance(a, list) and len(a) == 2 and all(
                    isinstance(x, (int, float)) and x > 0 for x in a) for a in anchors)):
            raise DesignError(f"{path}.decode.anchors",
                              "must be a non-empty list of [width, height] pairs (> 0)")
        rng = _get(dec, "centre_range", f"{path}.decode", 0.5)
        if not (isinstance(rng, (int, float)) and not isinstance(rng, bool)
                and 0.5 <= rng <= MAX_CENTRE_RANGE):
            raise DesignError(f"{path}.decode.centre_range",
                              f"must be a number from 0.5 to {MAX_CENTRE_RANGE} (cells), "
                              f"got {rng!r}")
        decode = Decode(tuple((float(a[0]), float(a[1])) for a in anchors), float(rng))
        net = cls(ch, h, w, tuple(bundles), in_fmt, w_fmt, f_fmt, prep, decode)
        last = net.layers[-1]
        if last.type == "pool" or net.output_shape[0] != decode.channels:
            raise DesignError(f"{path}.bundles",
                              f"the last layer must be a convolution with {decode.channels} "
                              f"output channels ({len(decode.anchors)} anchors x 5), "
                              f"got {net.output_shape[0]}")
        return net


def stage_multipliers(kind: str, pe, simd):
    """Multipliers of a stage (= weights it reads per cycle): ``9 * pe`` (dw), ``pe * simd``
    (pw), ``9 * pe * simd`` (conv3), 0 (pool). Works on ints and on numpy arrays."""
    if kind == "pool":
        return 0 * pe
    return {"dw": 9 * pe, "pw": pe * simd, "conv3": 9 * pe * simd}[kind]


def layer_output(kind: str, in_c: int, in_h: int, in_w: int, out_c: int | None,
                 stride: int = 1) -> tuple[int, int, int]:
    """(channels, height, width) a layer of ``kind`` makes of its input."""
    if kind == "pool":
        return in_c, in_h // 2, in_w // 2
    oc = in_c if kind == "dw" else out_c
    if kind == "pw":
        return oc, in_h, in_w
    return oc, (in_h - 1) // stride + 1, (in_w - 1) // stride + 1


def layer_macs(kind: str, s: LayerShape) -> int:
    """Multiply-accumulates of one layer of ``kind`` with shape ``s``."""
    pix = s.out_h * s.out_w
    return {"dw": 9 * s.in_c * pix, "pw": s.in_c * s.out_c * pix,
            "conv3": 9 * s.in_c * s.out_c * pix, "pool": 0}[kind]


def layer_weights(kind: str, s: LayerShape) -> int:
    """Weights (no bias) of one layer."""
    return {"dw": 9 * s.in_c, "pw": s.in_c * s.out_c, "conv3": 9 * s.in_c * s.out_c,
            "pool": 0}[kind]


def beat_lanes(feature_bits):
    """Feature codes in one 64-bit beat of the wire (8 of up to 8 bits, else 4); works on
    ints and numpy arrays."""
    from .wire import BEAT_BYTES  # noqa: PLC0415  (wire imports this module)
    return BEAT_BYTES // (1 + (feature_bits > 8))


def stage_word_lanes(kind: str, pe, simd, feature_bits):
    """Codes per word of a stage's memories and internal streams: what it reads per cycle
    (dw ``pe``, pw / conv3 ``simd``, pool one beat). Each pixel's channels are padded to
    whole words, so every access is one aligned word (hls/convert.h, hls/buffers.h)."""
    if kind == "pool":
        return beat_lanes(feature_bits)
    return pe if kind == "dw" else simd


def stage_row_elems(kind: str, pe, simd, feature_bits, in_w, in_c):
    """Elements of one input row in a stage's row memory: ``in_w`` pixels of ``in_c``
    channels padded to the stage's words (what ``Stage.row_elems`` must hold)."""
    r = stage_word_lanes(kind, pe, simd, feature_bits)
    return in_w * (-(-in_c // r)) * r


def weight_words(kind: str, pe: int, simd: int, in_c: int, out_c: int) -> int:
    """Folded weight words one layer takes in a stage's weight memory.

    A word is the block the stage reads per cycle: ``9 * pe`` weights for dw, ``pe * simd``
    for pw, ``9 * pe * simd`` for conv3; so a layer takes ``ceil(C / pe)`` words (dw) or
    ``ceil(OC / pe) * ceil(IC / simd)`` (pw, conv3).
    """
    if kind == "dw":
        return -(-in_c // pe)
    if kind in ("pw", "conv3"):
        return -(-out_c // pe) * -(-in_c // simd)
    return 0


# ---------------------------------------------------------------------------
# The design point and the overlay/network relation.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Design:
    name: str
    overlay: Overlay
    network: Network
    description: str = ""

    def to_dict(self) -> dict:
        d = {"schema_version": SCHEMA_VERSION, "name": self.name}
        if self.description:
            d["description"] = self.description
        d["overlay"] = self.overlay.to_dict()
        d["network"] = self.network.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> "Design":
        if not isinstance(d, dict):
            raise DesignError("(top level)", "a design is a JSON object")
        check_keys(d, "", DESIGN_KEYS)
        ver = _get(d, "schema_version", "")
        if ver != SCHEMA_VERSION:
            raise DesignError("schema_version",
                              f"this version reads schema {SCHEMA_VERSION}, got {ver!r}")
        name = _get(d, "name", "", "design")
        if not isinstance(name, str) or not name:
            raise DesignError("name", "must be a non-empty string")
        network = Network.from_dict(_get(d, "network", ""))
        overlay = Overlay.from_dict(_get(d, "overlay", ""))
        desc = d.get("description", "")
        design = cls(name, overlay, network, desc if isinstance(desc, str) else "")
        _check_formats(design)
        return design


def _check_formats(design: Design) -> None:
    """Formats must fit the overlay's datapath and the arithmetic must stay in int64."""
    ov, net = design.overlay, design.network
    if net.input_format.bits > ov.feature_bits:
        raise DesignError("network.input_format.bits",
                          f"{net.input_format.bits} exceeds the overlay's feature_bits "
                          f"{ov.feature_bits}")
    for name, fmt, limit in (("weight_format", net.weight_format, ov.weight_bits),
                             ("feature_format", net.feature_format, ov.feature_bits)):
        if fmt.bits > limit:
            raise DesignError(f"network.{name}.bits",
                              f"{fmt.bits} exceeds the overlay's datapath width {limit}")
    for bi, b in enumerate(net.bundles):
        for li, lay in enumerate(b.layers):
            p = f"network.bundles[{bi}].layers[{li}]"
            if lay.weight_format is not None and lay.weight_format.bits > ov.weight_bits:
                raise DesignError(f"{p}.weight_format.bits",
                                  f"{lay.weight_format.bits} exceeds the overlay's "
                                  f"weight_bits {ov.weight_bits}")
            if lay.out_format is not None and lay.out_format.bits > ov.feature_bits:
                raise DesignError(f"{p}.out_format.bits",
                                  f"{lay.out_format.bits} exceeds the overlay's "
                                  f"feature_bits {ov.feature_bits}")


def load_design(source: str | Path | dict) -> Design:
    """A design from a JSON file path, a reference name (``dnn-a``) or a dict.

    Raises :class:`DesignError` (field + reason) for anything malformed, including a file
    that is not JSON.
    """
    if isinstance(source, dict):
        return Design.from_dict(source)
    from . import designs as _ref   # the shipped reference designs
    s = str(source)
    if s in _ref.reference_names():
        return _ref.reference_design(s)
    p = Path(s)
    if not p.is_file():
        raise DesignError(s, "no such file and no reference design of that name "
                             f"(reference designs: {', '.join(_ref.reference_names())})")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DesignError(s, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    except UnicodeDecodeError:
        raise DesignError(s, "not a text file")
    except RecursionError:
        raise DesignError(s, "JSON nested too deeply to be a design") from None
    except OSError as e:
        raise DesignError(s, f"cannot read ({e.strerror or e})") from None
    return Design.from_dict(d)


# ---------------------------------------------------------------------------
# Mapping a network onto an overlay.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Pass:
    """One invocation of the bundle engine: some consecutive layers of one bundle,
    each on a stage slot of the overlay's chain (unused slots are bypassed)."""

    bundle: int
    layers: tuple[int, ...]      # global layer indices
    slots: tuple[int, ...]       # the stage slot of each layer


def plan_passes(network: Network, overlay: Overlay) -> list[Pass]:
    """Map every bundle onto engine passes, in order.

    Layers take stage slots in chain order; a layer whose kind has no slot left in the
    current pass starts a new pass. Raises :class:`DesignError` if a layer's kind is not
    in the chain at all.
    """
    kinds = overlay.stage_kinds
    passes: list[Pass] = []
    gi = 0
    for bi, b in enumerate(network.bundles):
        cur_layers: list[int] = []
        cur_slots: list[int] = []
        cursor = 0
        for li, lay in enumerate(b.layers):
            if lay.type not in kinds:
                raise DesignError(f"network.bundles[{bi}].layers[{li}].type",
                                  f"the overlay's engine has no {lay.type} stage "
                                  f"(stages: {', '.join(kinds)})")
            slot = next((k for k in range(cursor, len(kinds)) if kinds[k] == lay.type), None)
            if slot is None:
                passes.append(Pass(bi, tuple(cur_layers), tuple(cur_slots)))
                cur_layers, cur_slots = [], []
                slot = kinds.index(lay.type)
            cur_layers.append(gi)
            cur_slots.append(slot)
            cursor = slot + 1
            gi += 1
        passes.append(Pass(bi, tuple(cur_layers), tuple(cur_slots)))
    return passes


def _unsigned_overflow(fmt: FixedFormat, width: int) -> bool:
    """An unsigned format needs one bit more than its width in the signed datapath."""
    return not fmt.signed and fmt.bits + 1 > width


def check_fits(network: Network, overlay: Overlay) -> list[str]:
    """Everything about ``network`` that the overlay cannot run, one line each ([] = fits)."""
    problems: list[str] = []
    kinds = overlay.stage_kinds
    shapes = network.shapes()
    try:
        passes = plan_passes(network, overlay)
    except DesignError:
        passes = []                      # a missing stage kind is reported below
    for ps in passes:
        for gi, slot in zip(ps.layers, ps.slots):
            lay, s, st = network.layers[gi], shapes[gi], overlay.stages[slot]
            where = f"layer {gi} ({lay.type}, stage {slot})"
            cap = st.row_capacity(overlay)
            need = stage_row_elems(st.kind, st.pe, st.simd, overlay.feature_bits, s.in_w,
                                   s.in_c)
            if need > cap:
                problems.append(f"{where}: input row of {need} elements (channels padded "
                                f"to the stage's words) > the stage's row_elems {cap}")
            words = weight_words(lay.type, st.pe, st.simd, s.in_c, s.out_c)
            if st.weight_words is not None and words > st.weight_words:
                problems.append(f"{where}: {words} folded weight words > the stage's "
                                f"weight_words {st.weight_words}")
    for gi, (lay, s, (fin, wf, fout)) in enumerate(zip(network.layers, network.shapes(),
                                                        network.formats())):
        where = f"layer {gi} ({lay.type})"
        if lay.type not in kinds:
            problems.append(f"{where}: the engine has no {lay.type} stage")
        for what, n in (("input channels", s.in_c), ("output channels", s.out_c)):
            if n > overlay.max_channels:
                problems.append(f"{where}: {n} {what} > max_channels {overlay.max_channels}")
        if s.in_w > overlay.max_width:
            problems.append(f"{where}: width {s.in_w} > max_width {overlay.max_width}")
        for what, n in (("input row", s.in_w * s.in_c), ("output row", s.out_w * s.out_c)):
            if n > overlay.max_row_elems:
                problems.append(f"{where}: {what} of {n} elements > max_row_elems "
                                f"{overlay.max_row_elems}")
        nw = layer_weights(lay.type, s)
        if nw > overlay.max_layer_weights:
            problems.append(f"{where}: {nw} weights > max_layer_weights "
                            f"{overlay.max_layer_weights}")
        if wf is not None and wf.bits > overlay.weight_bits:
            problems.append(f"{where}: weights of {wf.bits} bits > weight_bits "
                            f"{overlay.weight_bits}")
        if wf is not None and _unsigned_overflow(wf, overlay.weight_bits):
            problems.append(f"{where}: unsigned {wf.bits}-bit weights need "
                            f"{wf.bits + 1} bits of the signed datapath ({overlay.weight_bits})")
        if fout.bits > overlay.feature_bits:
            problems.append(f"{where}: outputs of {fout.bits} bits > feature_bits "
                            f"{overlay.feature_bits}")
        if _unsigned_overflow(fout, overlay.feature_bits):
            problems.append(f"{where}: unsigned {fout.bits}-bit outputs need {fout.bits + 1} "
                            f"bits of the signed datapath ({overlay.feature_bits})")
        if s.in_h < 1 or s.out_h < 1 or s.out_w < 1:
            problems.append(f"{where}: the feature map is empty")
    fin = network.input_format
    if fin.bits > overlay.feature_bits or _unsigned_overflow(fin, overlay.feature_bits):
        problems.append(f"input: {'unsigned ' if not fin.signed else ''}{fin.bits} bits do "
                        f"not fit the signed {overlay.feature_bits}-bit datapath")
    return problems


def fits(network: Network, overlay: Overlay) -> bool:
    return not check_fits(network, overlay)


class DoesNotFit(CodesignError):
    """A network that its own overlay cannot run (training or exporting it is wasted)."""


def require_fits(design: Design, action: str, shown: int = 3) -> None:
    """Raise :class:`DoesNotFit` with :func:`check_fits`'s reasons unless ``design``'s
    network runs on its overlay; ``action`` says what was refused (``"train"``)."""
    problems = check_fits(design.network, design.overlay)
    if problems:
        more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
        raise DoesNotFit(f"{design.name}: the network does not fit its overlay, refusing to "
                         f"{action} it: {'; '.join(problems[:shown])}{more} (`codesign "
                         "estimate` lists every reason; enlarge the overlay or shrink the "
                         "network)")


def size_overlay(network: Network, device: str = "pynq-z1", clock_mhz: float = 100.0,
                 stages: tuple[Stage, ...] | None = None, weight_bits: int | None = None,
                 feature_bits: int | None = None, band_rows: int = 2,
                 rounding: str = "half_even", per_stage: bool = True) -> Overlay:
    """The smallest overlay (buffers and widths) that runs ``network``, with the given
    stage chain (by default one stage of each kind the network uses, in dw-pw-conv3-pool
    order, with modest parallelism). With ``per_stage`` each stage's memories are sized
    for the layers it runs (``Stage.row_elems``, ``Stage.weight_words``)."""
    if device not in device_names():
        raise UnknownDevice(f"unknown device {device!r}")
    shapes = network.shapes()
    fmts = network.formats()
    if stages is None:
        used = {lay.type for lay in network.layers}
        default = {"conv3": Stage("conv3", 4, 4), "dw": Stage("dw", 8),
                   "pw": Stage("pw", 16, 8), "pool": Stage("pool")}
        stages = tuple(default[k] for k in ("conv3", "dw", "pw", "pool") if k in used)
    wb = weight_bits or max([wf.bits for _, wf, _ in fmts if wf is not None] or [8])
    fb = feature_bits or max([network.input_format.bits] + [fo.bits for _, _, fo in fmts])
    stages = tuple(replace(st, row_elems=None, weight_words=None) for st in stages)
    if per_stage:
        rows = [0] * len(stages)
        words = [0] * len(stages)
        probe = Overlay(device=device, stages=stages)
        for ps in plan_passes(network, probe):
            for gi, slot in zip(ps.layers, ps.slots):
                s, st = shapes[gi], stages[slot]
                rows[slot] = max(rows[slot], stage_row_elems(st.kind, st.pe, st.simd, fb,
                                                             s.in_w, s.in_c))
                words[slot] = max(words[slot], weight_words(st.kind, st.pe, st.simd,
                                                            s.in_c, s.out_c))
        stages = tuple(replace(st, row_elems=r or None,
                               weight_words=(w or None) if st.kind != "pool" else None)
                       for st, r, w in zip(stages, rows, words))
    return Overlay(
        device=device, clock_mhz=clock_mhz, weight_bits=wb, feature_bits=fb,
        rounding=rounding, stages=stages,
        max_channels=max(max(s.in_c, s.out_c) for s in shapes),
        max_width=max(s.in_w for s in shapes),
        max_row_elems=max(max(s.in_w * s.in_c, s.out_w * s.out_c) for s in shapes),
        band_rows=band_rows,
        max_layer_weights=max(layer_weights(lay.type, s)
                              for lay, s in zip(network.layers, shapes)),
    )


def describe_layers(network: Network) -> list[str]:
    """Paper-style names per bundle, e.g. ``DW3(48) PW1(96) pool``."""
    out, shapes, gi = [], network.shapes(), 0
    for b in network.bundles:
        parts = []
        for lay in b.layers:
            s = shapes[gi]
            parts.append("pool" if lay.type == "pool" else
                         f"{lay.short()}({s.out_c if lay.type != 'dw' else s.in_c})")
            gi += 1
        out.append(" ".join(parts))
    return out

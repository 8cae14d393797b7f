"""Bundles: the building blocks every generated network is stacked from.

The layer pool (DESIGN.md section 1, step 1) is DW3 (depthwise 3x3), PW1 (pointwise 1x1),
C3 (full 3x3) and the 2x2 max-pool. A :class:`BundleTemplate` is a sequence of up to
``max_layers`` convolutions from the pool, a channel expansion factor on every
channel-changing layer but the last (the last sets the bundle's width), and how the bundle
down-samples when the network asks it to: a trailing 2x2 ``pool`` or ``stride`` 2 on its
first 3x3 layer.

:func:`enumerate_bundles` draws every combination and drops (with the reason written down):
sequences with no channel-changing layer (they cannot widen a network), two depthwise
layers in a row (no channel mixing between them), stride down-sampling without a 3x3 layer,
and duplicates (an expansion factor on a bundle with one channel-changing layer is
meaningless, so those variants are one bundle).

:func:`estimate_bundles` estimates each bundle on the target device as it would be built:
a prototype network of ``replicas`` copies (widths 32, 64, 128, ..., each copy
down-sampling) at the paper's input size, its overlay sized by
:func:`pynq_codesign.design.size_overlay` with the parallelism chosen to fit
(:func:`host_search.space.fit_accelerator`); a prototype that fits at no parallelism is
dropped.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from pynq_codesign.design import Design, Layer

from .qos_model import estimate
from .space import NetKnobs, Targets, build_network, fit_accelerator, make_design

LAYER_POOL = ("dw", "pw", "conv3")
SHORT = {"dw": "DW3", "pw": "PW1", "conv3": "C3"}
EXPANSIONS = (0.5, 1.0, 2.0)
DOWN_MODES = ("pool", "stride")
#: Prototype: replicas, first width, width growth per replica.
PROTO_REPLICAS, PROTO_BASE_CH, PROTO_GROWTH = 3, 32, 2.0


@dataclass(frozen=True)
class BundleTemplate:
    """Conv layer kinds, expansion per layer (1.0 for the last channel-changing one and
    for dw), and the down-sampling mode."""

    kinds: tuple[str, ...]
    expansions: tuple[float, ...]
    down: str = "pool"

    @property
    def key(self) -> str:
        parts = []
        for k, e in zip(self.kinds, self.expansions):
            parts.append(SHORT[k] + (f"x{e:g}" if e != 1.0 else ""))
        return "-".join(parts) + ("+pool" if self.down == "pool" else "/s2")

    def layers_for(self, width: int, down: bool) -> list[Layer]:
        """The layers of one copy of the bundle with ``width`` output channels."""
        out: list[Layer] = []
        strided = False
        for k, e in zip(self.kinds, self.expansions):
            stride = 1
            if down and self.down == "stride" and k in ("dw", "conv3") and not strided:
                stride, strided = 2, True
            if k == "dw":
                out.append(Layer("dw", stride=stride))
            else:
                oc = max(4, int(round(width * e / 4.0)) * 4)
                out.append(Layer(k, oc, stride=stride))
        if down and self.down == "pool":
            out.append(Layer("pool"))
        return out

    def to_dict(self) -> dict:
        return {"key": self.key, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "BundleTemplate":
        return cls(tuple(d["kinds"]), tuple(float(e) for e in d["expansions"]), d["down"])


@dataclass
class BundleInfo:
    """One enumerated bundle: kept or dropped (with why), and its estimate when made."""

    template: BundleTemplate
    dropped: str = ""                       # reason; "" = still in the running
    stage: str = "enumerate"                # where it was dropped / last judged
    estimate: dict = field(default_factory=dict)
    prototype: dict = field(default_factory=dict)     # the prototype design (JSON)

    @property
    def key(self) -> str:
        return self.template.key


def _channel_changing(kinds: tuple[str, ...]) -> list[int]:
    return [i for i, k in enumerate(kinds) if k in ("pw", "conv3")]


def enumerate_bundles(max_layers: int = 3) -> list[BundleInfo]:
    """Every bundle of the layer pool up to ``max_layers`` convolutions, deduplicated;
    the dropped ones stay in the list with their reason."""
    out: list[BundleInfo] = []
    seen: set[str] = set()
    for n in range(1, max_layers + 1):
        for kinds in itertools.product(LAYER_POOL, repeat=n):
            cc = _channel_changing(kinds)
            for down in DOWN_MODES:
                base = BundleTemplate(kinds, tuple(1.0 for _ in kinds), down)
                if not cc:
                    out.append(BundleInfo(base, "no channel-changing layer (PW1 or C3): it "
                                                "cannot widen a network"))
                    continue
                if any(a == b == "dw" for a, b in zip(kinds, kinds[1:])):
                    out.append(BundleInfo(base, "two DW3 in a row: no channel mixing "
                                                "between them"))
                    continue
                if down == "stride" and not any(k in ("dw", "conv3") for k in kinds):
                    out.append(BundleInfo(base, "stride down-sampling needs a 3x3 layer"))
                    continue
                inner = cc[:-1]
                for exps in itertools.product(EXPANSIONS, repeat=len(inner)):
                    e = [1.0] * n
                    for i, x in zip(inner, exps):
                        e[i] = x
                    t = BundleTemplate(kinds, tuple(e), down)
                    if t.key in seen:
                        out.append(BundleInfo(t, f"duplicate of {t.key}"))
                        continue
                    seen.add(t.key)
                    out.append(BundleInfo(t))
    return out


def prototype_knobs(template: BundleTemplate, replicas: int = PROTO_REPLICAS) -> NetKnobs:
    """The knobs of a bundle's prototype: ``replicas`` copies, each down-sampling."""
    return NetKnobs(template.key, replicas, PROTO_BASE_CH, PROTO_GROWTH,
                    tuple(range(replicas)), 8, 8, 1.0)


def prototype_design(template: BundleTemplate, targets: Targets, estimator,
                     replicas: int = PROTO_REPLICAS) -> tuple[Design, dict] | None:
    """The prototype of ``template`` on its fitted overlay and its estimate; None if it fits
    the device at no parallelism."""
    net = build_network(template, prototype_knobs(template, replicas), targets.base_input)
    accel = fit_accelerator(net, targets, estimator)
    if accel is None:
        return None
    design = make_design(net, accel, targets.device, f"proto-{template.key}")
    rec = estimate(design)
    mid = rec.bundles[min(1, len(rec.bundles) - 1)]
    est = {"fps": accel.fps, "max_fps": accel.max_fps, "power_w": accel.power_w, "dsp": accel.dsp,
           "bram18": accel.bram18, "lut": accel.lut, "meets": accel.meets,
           "macs": net.macs(), "params": net.params(), "accel": accel.to_dict(),
           "bundle_latency_ms": mid.latency_ms, "fps_model": rec.fps, "source": "estimated"}
    return design, est


def estimate_bundles(bundles: list[BundleInfo], targets: Targets, estimator,
                     replicas: int = PROTO_REPLICAS) -> None:
    """Fill in each live bundle's prototype and estimate; drop those that fit nowhere."""
    for b in bundles:
        if b.dropped:
            continue
        got = prototype_design(b.template, targets, estimator, replicas)
        b.stage = "estimate"
        if got is None:
            b.dropped = f"its prototype fits {targets.device} at no parallelism"
            continue
        design, est = got
        b.prototype = design.to_dict()
        b.estimate = est

"""Regenerate pynq_codesign/designs/dnn-{a,b,c}.json: the paper's three PYNQ-Z1 networks
(Zhang et al. 2019) for the 3x160x360 input, each on an overlay sized for it.

    python scripts/make_reference_designs.py

DNN-A and DNN-B: DW3(3) PW1(48) pool | DW3(48) PW1(96) pool | DW3(96) PW1(192) pool |
DW3(192) PW1(384) PW1(10); DNN-C as A but the last bundle is DW3(192) PW1(384) DW3(384)
PW1(512) PW1(10). A: W16/F8, B: W16/F16, C: W11/F8. The final PW1(10) is the box
back-end (2 anchors x 5). The engine is a dw-pw-pool chain at 100 MHz with 164
multipliers; band_rows 2 and per-stage buffer sizes keep every design within the
xc7z020's 280 BRAM18 (`codesign estimate dnn-c`).
"""
from pathlib import Path

from pynq_codesign.design import (Bundle, Design, Layer, Network, Stage, check_fits,
                                  size_overlay)
from pynq_codesign.fixedpoint import FixedFormat

OUT = Path(__file__).resolve().parents[1] / "pynq_codesign" / "designs"
CHAIN = (Stage("dw", 4), Stage("pw", 16, 8), Stage("pool"))


def dw_pw(channels: int, pool: bool = True) -> Bundle:
    layers = [Layer("dw"), Layer("pw", channels)] + ([Layer("pool")] if pool else [])
    return Bundle(tuple(layers))


def main() -> None:
    head = Layer("pw", 10, activation="none")
    ab = (dw_pw(48), dw_pw(96), dw_pw(192), Bundle((Layer("dw"), Layer("pw", 384), head)))
    c = ab[:3] + (Bundle((Layer("dw"), Layer("pw", 384), Layer("dw"), Layer("pw", 512),
                          head)),)
    specs = {
        "dnn-a": (ab, 16, 8, "DNN-A: 16-bit weights, 8-bit feature maps"),
        "dnn-b": (ab, 16, 16, "DNN-B: 16-bit weights, 16-bit feature maps"),
        "dnn-c": (c, 11, 8, "DNN-C: 11-bit weights, 8-bit feature maps; two DW3-PW1 "
                            "repetitions in the last bundle"),
    }
    for name, (bundles, wb, fb, desc) in specs.items():
        net = Network(bundles=bundles, input_format=FixedFormat(8, 3),
                      weight_format=FixedFormat(wb, 2),
                      feature_format=FixedFormat(fb, 4 if fb == 8 else 6))
        ov = size_overlay(net, "pynq-z1", 100.0, stages=CHAIN, weight_bits=wb,
                          feature_bits=fb, band_rows=2)
        assert check_fits(net, ov) == [], name
        d = Design(name, ov, net, desc + " (Zhang et al. 2019, Pynq-Z1, 3x160x360 input)")
        (OUT / f"{name}.json").write_text(d.to_json())
        print(f"{name}: hardware ID {ov.hardware_id_hex}")


if __name__ == "__main__":
    main()

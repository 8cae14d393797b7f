"""Small designs and packages with random integer weights, for tests of any part."""
import numpy as np

from pynq_codesign.design import Design, load_design
from pynq_codesign.wire import LayerParams, build_program, weight_shape


def tiny_design() -> Design:
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=16, width=24)
    d["name"] = "tiny"
    return Design.from_dict(d)


def random_program(design, seed=0):
    rng = np.random.default_rng(seed)
    ps = []
    for lay, s, (_, wf, _) in zip(design.network.layers, design.network.shapes(),
                                  design.network.formats()):
        if not lay.is_conv:
            ps.append(None)
            continue
        w = rng.integers(wf.code_min() // 64, wf.code_max() // 64,
                         size=weight_shape(lay.type, s.in_c, s.out_c))
        ps.append(LayerParams(w, rng.integers(-500, 500, size=s.out_c)))
    return build_program(design, ps)


def lively_program(design, seed=0, target=20.0):
    """Random weights scaled per layer so that every layer's outputs stay busy (codes of
    about ``target`` in magnitude, neither all zero nor all saturated): a wrong byte
    anywhere then shows in the final output."""
    rng = np.random.default_rng(seed)
    ps = []
    for lay, s, (fin, wf, fout) in zip(design.network.layers, design.network.shapes(),
                                       design.network.formats()):
        if not lay.is_conv:
            ps.append(None)
            continue
        fan_in = {"dw": 9, "pw": s.in_c, "conv3": 9 * s.in_c}[lay.type]
        shift = fin.frac + wf.frac - fout.frac
        std = target * 2.0 ** shift / (30.0 * np.sqrt(fan_in))
        w = np.clip(np.round(rng.normal(0, std, size=weight_shape(lay.type, s.in_c, s.out_c))),
                    wf.code_min(), wf.code_max()).astype(np.int64)
        b = rng.integers(0, 2 ** max(shift, 1), size=s.out_c)
        ps.append(LayerParams(w, b))
    return build_program(design, ps)


def random_package(out, design: Design | None = None, seed: int = 0, n_golden: int = 1,
                   lively: bool = False):
    """A complete package (random weights, emulator golden vectors) written to ``out``;
    ``lively`` scales the weights so that no layer's output is all zero."""
    from pynq_codesign.package import write_package
    from pynq_codesign.platform.sim.emulator import run_program
    design = design or tiny_design()
    prog = (lively_program if lively else random_program)(design, seed)
    net = design.network
    rng = np.random.default_rng(seed + 1)
    fmt = net.input_format
    golden = []
    for _ in range(n_golden):
        x = rng.integers(fmt.code_min(), fmt.code_max() + 1,
                         size=(net.input_height, net.input_width, net.input_channels))
        golden.append((x, run_program(prog, x, design.overlay)))
    return write_package(out, design, prog, golden)

"""The emulator against a plain int64 reference written from the layer semantics
(design.py docstring, fixedpoint.shift_round / saturate), independent of the C++: the
float64 fast path, the shift folded into the weights, the activation as clip bounds and
the pool-before-requantisation saving must all give the same codes."""
import numpy as np
import pytest

from pynq_codesign.design import Bundle, Design, Layer, Network, Overlay, Stage
from pynq_codesign.fixedpoint import FixedFormat, Rounding, acc_frac, saturate, shift_round
from pynq_codesign.platform.sim.emulator import EmulatorError, check_exact, run_pass, run_program
from pynq_codesign.wire import LayerParams, build_program, relu6_limit, weight_shape

OV = dict(max_channels=16, max_width=16, max_row_elems=256, max_layer_weights=9 * 256,
          band_rows=2, stages=(Stage("conv3", 2, 2), Stage("dw", 2), Stage("pw", 2, 2),
                               Stage("pool")))


def ref_layer(x, lay, w, b, fin, wf, fout, ov):
    """Loops and int64, straight from the semantics."""
    h, wd, c = x.shape
    if lay.type == "pool":
        oh, ow = h // 2, wd // 2
        return x[:2 * oh, :2 * ow].reshape(oh, 2, ow, 2, c).max(axis=(1, 3))
    s = lay.stride
    oh, ow = (h - 1) // s + 1, (wd - 1) // s + 1
    xp = np.zeros((h + 2, wd + 2, c), np.int64)
    xp[1:-1, 1:-1] = x
    if lay.type == "pw":
        acc = np.einsum("hwc,oc->hwo", x.astype(np.int64), w.astype(np.int64))
    else:
        oc = c if lay.type == "dw" else w.shape[0]
        acc = np.zeros((oh, ow, oc), np.int64)
        for ky in range(3):
            for kx in range(3):
                v = xp[ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s]
                if lay.type == "dw":
                    acc += v * w[:, ky, kx]
                else:
                    acc += np.einsum("hwc,oc->hwo", v, w[:, :, ky, kx])
    acc = acc + b
    af = acc_frac(fin, wf)
    if lay.activation != "none":
        acc = np.maximum(acc, 0)
    if lay.activation == "relu6":
        acc = np.minimum(acc, relu6_limit(af))
    q = shift_round(acc, af - fout.frac, ov.rounding)
    return saturate(q, fout, ov.narrow_range)


def random_case(rng, rounding):
    ov = Overlay(weight_bits=10, feature_bits=9, rounding=rounding,
                 narrow_range=bool(rng.integers(2)), **OV)
    kinds = [["conv3", "dw", "pw", "pool"], ["dw", "pw", "pool"], ["pw", "pool"],
             ["conv3", "pool"], ["dw", "pool", "pw"]][rng.integers(5)]
    layers = []
    for k in kinds:
        bits = int(rng.integers(3, 10))
        layers.append(Layer(k, int(rng.integers(1, 9)) if k in ("pw", "conv3") else None,
                            int(rng.integers(1, 3)) if k in ("dw", "conv3") else 1,
                            str(rng.choice(["none", "relu", "relu6"])),
                            FixedFormat(int(rng.integers(2, 11)), int(rng.integers(-1, 6)))
                            if k != "pool" else None,
                            FixedFormat(bits, int(rng.integers(-2, bits + 3)))
                            if k != "pool" else None))
    net = Network(int(rng.integers(1, 7)), int(rng.integers(4, 12)), int(rng.integers(4, 12)),
                  (Bundle(tuple(layers)),), FixedFormat(9, 4), FixedFormat(10, 2),
                  FixedFormat(9, 4))
    d = Design("case", ov, net)
    ps = []
    for lay, s, (_, wf, _) in zip(net.layers, net.shapes(), net.formats()):
        ps.append(None if not lay.is_conv else LayerParams(
            rng.integers(wf.code_min(), wf.code_max() + 1,
                         size=weight_shape(lay.type, s.in_c, s.out_c)),
            rng.integers(-(1 << 14), 1 << 14, size=s.out_c)))
    x = rng.integers(-256, 256, size=(net.input_height, net.input_width, net.input_channels))
    return d, ps, x


@pytest.mark.parametrize("rounding", [r.value for r in Rounding])
def test_emulator_equals_int64_reference(rounding):
    rng = np.random.default_rng(sum(map(ord, rounding)))
    for _ in range(25):
        d, ps, x = random_case(rng, rounding)
        prog = build_program(d, ps)
        y, per_pass = run_program(prog, x, d.overlay, keep_passes=True)
        ref = x
        for lay, p, (fin, wf, fout) in zip(d.network.layers, ps, d.network.formats()):
            ref = ref_layer(ref, lay, None if p is None else p.weights,
                            None if p is None else p.bias, fin, wf, fout, d.overlay)
        assert np.array_equal(y, ref)
        assert y.dtype == np.int64


def test_keep_layers_gives_the_same_result_as_the_fused_pool():
    rng = np.random.default_rng(3)
    for _ in range(10):
        d, ps, x = random_case(rng, "half_away")
        prog = build_program(d, ps)
        first = prog.passes[0]
        a = run_pass(x, prog.params, first.desc_offset, d.overlay)
        b, layers = run_pass(x, prog.params, first.desc_offset, d.overlay, keep_layers=True)
        assert np.array_equal(a, b) and np.array_equal(layers[-1], b)


def test_activation_bounds_and_left_shift_saturate():
    """Edge cases of folding the activation into the clip: a ReLU6 limit far above the
    format's range, a ReLU into a tiny format, and a left shift by 28 bits (saturates)."""
    ov = Overlay(weight_bits=8, feature_bits=8, **OV)
    for out, act in ((FixedFormat(8, -4, signed=False), "relu6"),     # 6.0 > out range
                     (FixedFormat(4, 8), "relu"), (FixedFormat(8, -20), "none")):
        net = Network(2, 3, 3, (Bundle((Layer("pw", 3, 1, act, FixedFormat(8, 8), out),)),),
                      FixedFormat(8, 8), FixedFormat(8, 8), FixedFormat(8, 4))
        d = Design("edge", ov, net)
        w = np.full((3, 2), 100)
        prog = build_program(d, [LayerParams(w, np.array([5, -5, 0]))])
        x = np.array([[[100, 100]] * 3] * 3)
        fin, wf, fout = net.formats()[0]
        ref = ref_layer(x, net.layers[0], w, np.array([5, -5, 0]), fin, wf, fout, ov)
        assert np.array_equal(run_program(prog, x, ov), ref)


def test_check_exact_refuses_sums_beyond_2_52():
    check_exact(512, 255, 2047, 1 << 31)
    with pytest.raises(EmulatorError, match="2\\*\\*52"):
        check_exact(1 << 20, 1 << 16, 1 << 17)

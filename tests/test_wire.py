"""The wire format: feature-map layout, parameter buffer, pass descriptors."""
import numpy as np
import pytest

from pynq_codesign.design import load_design
from pynq_codesign.wire import (BEAT_BYTES, WireError, build_program, feature_bytes,
                                pack_feature, padded_channels, read_descriptor,
                                read_layer_params, relu6_limit, unpack_feature)
from tests.helpers import random_program, tiny_design


@pytest.mark.parametrize("bits,c,cp", [(8, 3, 8), (8, 8, 8), (8, 9, 16), (16, 3, 4),
                                        (11, 5, 8), (16, 48, 48)])
def test_channels_pad_to_whole_beats(bits, c, cp):
    assert padded_channels(c, bits) == cp
    assert feature_bytes(2, 3, c, bits) % BEAT_BYTES == 0


def test_hwc_layout_channels_innermost_little_endian():
    x = np.arange(2 * 3 * 5).reshape(2, 3, 5) - 10
    b = pack_feature(x, 16)
    assert b.size == 2 * 3 * 8 * 2
    words = b.view("<i2").reshape(2, 3, 8)
    assert (words[:, :, :5] == x).all() and (words[:, :, 5:] == 0).all()
    assert b[0] == (x[0, 0, 0] & 0xFF)            # channel 0 in the lowest byte of the beat
    assert (unpack_feature(b, 2, 3, 5, 16) == x).all()


def test_unpack_refuses_short_buffer():
    with pytest.raises(WireError, match="needs"):
        unpack_feature(np.zeros(10, np.uint8), 2, 3, 5, 8)


def test_descriptors_describe_every_pass():
    d = tiny_design()
    prog = random_program(d)
    shapes = d.network.shapes()
    for ps in prog.passes:
        header, entries = read_descriptor(prog.params, ps.desc_offset)
        assert header["n_layers"] == len(ps.layers) == len(entries)
        assert ps.desc_offset % BEAT_BYTES == 0
        for gi, e in zip(ps.layers, entries):
            s = shapes[gi]
            assert (e["in_c"], e["in_h"], e["in_w"]) == (s.in_c, s.in_h, s.in_w)
            assert (e["out_c"], e["out_h"], e["out_w"]) == (s.out_c, s.out_h, s.out_w)
        assert ps.in_bytes == feature_bytes(*ps.in_shape[1:], ps.in_shape[0],
                                            d.overlay.feature_bits)


def test_weights_round_trip_through_buffer():
    d = tiny_design()
    rng = np.random.default_rng(3)
    from pynq_codesign.wire import LayerParams, weight_shape
    ps = []
    for lay, s, (_, wf, _) in zip(d.network.layers, d.network.shapes(), d.network.formats()):
        ps.append(LayerParams(rng.integers(wf.code_min(), wf.code_max() + 1,
                                           size=weight_shape(lay.type, s.in_c, s.out_c)),
                              rng.integers(-2**31, 2**31, size=s.out_c))
                  if lay.is_conv else None)
    prog = build_program(d, ps)
    for p in prog.passes:
        _, entries = read_descriptor(prog.params, p.desc_offset)
        for gi, e in zip(p.layers, entries):
            if ps[gi] is not None:
                got = read_layer_params(prog.params, e, d.overlay)
                assert (got.weights == ps[gi].weights).all() and (got.bias == ps[gi].bias).all()


def test_build_program_refuses_out_of_range_codes():
    d = tiny_design()
    prog_ok = random_program(d)
    assert prog_ok.params.size > 0
    from pynq_codesign.wire import LayerParams, weight_shape
    net = d.network
    bad = []
    for lay, s in zip(net.layers, net.shapes()):
        bad.append(LayerParams(np.full(weight_shape(lay.type, s.in_c, s.out_c), 1 << 20),
                               np.zeros(s.out_c)) if lay.is_conv else None)
    with pytest.raises(WireError, match="outside"):
        build_program(d, bad)


def test_relu6_limit():
    assert relu6_limit(0) == 6 and relu6_limit(4) == 96 and relu6_limit(-1) == 3
    assert relu6_limit(40) == 6 << 40


def test_reference_design_programs_fit_int32_descriptors():
    for name in ("dnn-a", "dnn-c"):
        d = load_design(name)
        prog = random_program(d)
        assert len(prog.passes) >= len(d.network.bundles)

"""Torch networks: fake quantisation vs the golden table, integer-exact mode vs the
emulator (bit for bit), decoding vs prepost.decode, the loss's assignment."""
import numpy as np
import pytest
import torch

from host_search.nn import (best_boxes, build_model, calibrate_formats, detection_loss,
                            fake_quant, integer_params, to_codes)
from host_search.nn.head import assign
from pynq_codesign.design import Design
from pynq_codesign.fixedpoint import GOLDEN, FixedFormat, Rounding, quantize
from pynq_codesign.platform.sim.emulator import run_program
from pynq_codesign.prepost import decode, quantize_input
from pynq_codesign.wire import build_program
from tests.helpers import tiny_design


# --- fake quantisation -------------------------------------------------------------------

def test_fake_quant_golden_table():
    for c in GOLDEN:
        x = torch.tensor([c.value], dtype=torch.float64)
        y = fake_quant(x, c.fmt, c.rounding, c.narrow)
        assert float(y[0]) == c.expect * c.fmt.scale, c
        assert int(to_codes(x, c.fmt, c.rounding, c.narrow)[0]) == c.expect, c


@pytest.mark.parametrize("mode", list(Rounding))
@pytest.mark.parametrize("narrow", [False, True])
def test_fake_quant_matches_fixedpoint_on_random_values(mode, narrow):
    rng = np.random.default_rng(3)
    # values on a fine grid (many exact ties) and plain random ones, some out of range
    x = np.concatenate([rng.integers(-3000, 3000, 500) / 128.0, rng.normal(0, 6, 500)])
    fmt = FixedFormat(8, 4)
    want = quantize(x, fmt, mode, narrow) * fmt.scale
    for dt in (torch.float64, torch.float32):
        got = fake_quant(torch.tensor(x, dtype=dt), fmt, mode, narrow).double().numpy()
        if dt is torch.float64:
            assert np.array_equal(got, want)
        else:   # float32 inputs are already rounded; compare on the float32 values
            want32 = quantize(x.astype(np.float32).astype(np.float64), fmt, mode,
                              narrow) * fmt.scale
            assert np.array_equal(got, want32)


def test_fake_quant_straight_through_gradient():
    fmt = FixedFormat(8, 4)      # range -8 .. 7.9375
    x = torch.tensor([0.3, -2.0, 7.9, 9.0, -9.0], dtype=torch.float64, requires_grad=True)
    fake_quant(x, fmt, Rounding.HALF_EVEN).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


# --- integer-exact network vs the emulator --------------------------------------------------

def _mixed_design(rounding="half_even", narrow=False) -> Design:
    """Every layer kind, strides, ReLU6, at a tiny size."""
    d = tiny_design().to_dict()
    d["overlay"].update(rounding=rounding, narrow_range=narrow,
                        stages=[{"kind": "conv3", "pe": 2, "simd": 2}, {"kind": "dw", "pe": 4},
                                {"kind": "pw", "pe": 4, "simd": 4}, {"kind": "pool"}])
    d["network"]["input"].update(height=14, width=19)
    d["network"]["bundles"] = [
        {"layers": [{"type": "conv3", "out_channels": 6, "stride": 2, "activation": "relu6"},
                    {"type": "pool"}]},
        {"layers": [{"type": "dw", "activation": "relu6"},
                    {"type": "pw", "out_channels": 8, "activation": "relu"}]},
        {"layers": [{"type": "dw", "stride": 2, "activation": "relu"},
                    {"type": "pw", "out_channels": 10, "activation": "none"}]},
    ]
    return Design.from_dict(d)


def _trained_like(design: Design, seed=0):
    """A model with non-trivial batch-norm statistics, folded and calibrated."""
    torch.manual_seed(seed)
    m = build_model(design)
    net = design.network
    xs = [torch.randn(4, net.input_channels, net.input_height, net.input_width) * 1.5
          for _ in range(3)]
    m.train()
    with torch.no_grad():
        for x in xs:
            m(x)
        for u in m.units:      # random affine batch norms
            if getattr(u, "bn", None) is not None:
                u.bn.weight.uniform_(0.5, 2.0)
                u.bn.bias.uniform_(-0.5, 0.5)
    m.eval()
    m.fold_batch_norm()
    calibrated = calibrate_formats(net, m.observe_ranges(xs))
    m.set_design(Design(design.name, design.overlay, calibrated))
    return m


@pytest.mark.parametrize("rounding,narrow", [("half_even", False), ("floor", True),
                                             ("half_away", False), ("toward_zero", True)])
def test_integer_exact_mode_equals_emulator(rounding, narrow):
    m = _trained_like(_mixed_design(rounding, narrow))
    d = m.design
    net = d.network
    prog = build_program(d, integer_params(m))
    m.quantized = True
    m.double()
    rng = np.random.default_rng(5)
    for _ in range(2):
        x_real = rng.normal(0, 1.5, (net.input_height, net.input_width, 3))
        codes = quantize_input(x_real, net, d.overlay.rounding)
        want = run_program(prog, codes, d.overlay)
        with torch.no_grad():
            y = m(torch.from_numpy(x_real.transpose(2, 0, 1)[None].copy()))
        fout = net.formats()[-1][2]
        got = y[0].permute(1, 2, 0).numpy() / fout.scale
        assert np.array_equal(got, np.round(got))
        assert np.array_equal(got.astype(np.int64), want)
        assert np.abs(want).max() > 0          # the test is not trivially on zeros
        # same boxes as the board's decoder
        box_t, _ = best_boxes(y, net.decode)
        box_e, _ = decode(want * fout.scale, net.decode)
        assert np.allclose(box_t[0].numpy(), box_e, atol=1e-12)


def test_integer_exact_on_dnn_a_tiny():
    m = _trained_like(tiny_design(), seed=1)
    d = m.design
    prog = build_program(d, integer_params(m))
    m.quantized = True
    m.double()
    x = np.random.default_rng(0).normal(0, 1, (16, 24, 3))
    codes = quantize_input(x, d.network, d.overlay.rounding)
    with torch.no_grad():
        y = m(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
    fout = d.network.formats()[-1][2]
    assert np.array_equal((y[0].permute(1, 2, 0).numpy() / fout.scale).astype(np.int64),
                          run_program(prog, codes, d.overlay))


def test_quantised_needs_folded_batch_norm():
    m = build_model(tiny_design())
    m.quantized = True
    with pytest.raises(RuntimeError, match="fold"):
        m(torch.zeros(1, 3, 16, 24))


def test_fold_keeps_float_function():
    d = tiny_design()
    torch.manual_seed(0)
    m = build_model(d)
    x = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    m.double().train()
    with torch.no_grad():
        m(x * 2)
    m.eval()
    with torch.no_grad():
        before = m(x)
        m.fold_batch_norm()
        after = m(x)
    assert torch.allclose(before, after, atol=1e-10)


def test_calibration_picks_int_bits_from_ranges():
    m = _trained_like(tiny_design())
    for u, (_, wf, _) in zip(m.units, m.network.formats()):
        if wf is not None:
            wmax = float(u.conv.weight.detach().abs().max())
            assert wmax <= wf.real_max() and wmax > wf.real_max() / 4


# --- decoding and loss -----------------------------------------------------------------

@pytest.mark.parametrize("centre_range", [0.5, 1.5])
def test_best_boxes_match_prepost_decode(centre_range):
    from dataclasses import replace
    d = replace(tiny_design().network.decode, centre_range=centre_range)
    torch.manual_seed(2)
    out = torch.randn(3, 10, 4, 6, dtype=torch.float64) * 3
    boxes, conf = best_boxes(out, d)
    for i in range(3):
        b, c = decode(out[i].permute(1, 2, 0).numpy(), d)
        assert np.allclose(boxes[i].numpy(), b, atol=1e-12)
        assert abs(float(conf[i]) - c) < 1e-12


def test_assign_responsible_cell_and_anchor():
    d = tiny_design().network.decode          # anchors (0.04, 0.07), (0.10, 0.18)
    boxes = torch.tensor([[0.50, 0.50, 0.54, 0.57], [0.1, 0.1, 0.2, 0.28]])
    t = assign(boxes, d, gh=4, gw=8)
    assert t.gx.tolist() == [4, 1] and t.gy.tolist() == [2, 0]
    assert t.anchor.tolist() == [0, 1]
    assert torch.allclose(t.twh[0], torch.zeros(2), atol=1e-5)


@pytest.mark.parametrize("neighbours, centre_range, drop",
                         [(0.0, 0.5, 10), (1.5, 0.5, 3), (1.5, 1.5, 10)])
def test_loss_decreases_when_fitting_one_box(neighbours, centre_range, drop):
    """Free head outputs fit two boxes. With neighbour cells the loss keeps a floor when a
    neighbour cannot put the centre outside itself (centre range 0.5), but the decoded box
    is as good; with a centre range that reaches the centre from every neighbour, no floor."""
    from dataclasses import replace
    from host_search.nn import LossWeights
    d = replace(tiny_design().network.decode, centre_range=centre_range)
    w = LossWeights(neighbours=neighbours)
    torch.manual_seed(0)
    out = torch.zeros(2, 10, 4, 6, requires_grad=True)
    boxes = torch.tensor([[0.3, 0.3, 0.35, 0.4], [0.6, 0.1, 0.75, 0.3]])
    opt = torch.optim.Adam([out], lr=0.1)
    # at a constant 0.1 Adam circles the optimum (IoU 0.87-0.96 from step to step, where step
    # 200 lands depends on the CPU's float kernels); annealed it settles (IoU 0.999+)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
    first = None
    for _ in range(200):
        loss, _ = detection_loss(out, boxes, d, w)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    pred, _ = best_boxes(out.detach(), d)
    from pynq_codesign.prepost import iou
    assert float(loss.detach()) < first / drop
    assert iou(pred.numpy(), boxes.numpy()).min() > 0.9


def test_head_range_ignores_negative_confidence_logits():
    from host_search.nn.model import head_range
    from host_search.nn.model import HEAD_LOGIT_MARGIN
    out = torch.zeros(1, 10, 2, 3)
    out[0, 4] = -20.0            # anchor 0 confidence: strongly "no object"
    out[0, 9] = -20.0
    out[0, 7, 1, 1] = -4.5       # anchor 1 tw
    out[0, 9, 0, 0] = 3.0        # anchor 1 confidence: the best cell
    assert head_range(out, 2) == 4.5
    out[0, 9, 0, 0] = 6.0
    assert head_range(out, 2) == 6.0
    # early in training every logit is negative: the best one (and a margin) must still fit,
    # or every cell saturates to the same code and decoding takes the first cell
    out[0, 9, 0, 0] = -5.0
    assert head_range(out, 2) == 5.0 + HEAD_LOGIT_MARGIN


def test_calibration_lets_rare_outliers_saturate():
    """A rare outlier does not set a hidden layer's scaling; max-abs would."""
    d = tiny_design()
    m = build_model(d, batch_norm=False)
    m.eval()
    x = torch.rand(1, 3, 16, 24) * 0.5
    with torch.no_grad():
        for u in m.units:
            if hasattr(u, "conv"):
                u.conv.weight.zero_()
                u.conv.bias.zero_()
        c0 = m.units[0].conv          # dw on the input: identity on channel 0
        c0.weight[:, 0, 1, 1] = 1.0
    x[0, 0, 3, 5] = 40.0               # one outlier among the 16*24*3 outputs of layer 0
    r_all = m.observe_ranges([x], saturate_fraction=0.0)
    r_sat = m.observe_ranges([x], saturate_fraction=0.01)
    assert r_all.out_max[0] == 40.0
    assert r_sat.out_max[0] < 1.0      # the range the other values need
    n_all = calibrate_formats(d.network, r_all).formats()[0][2]
    n_sat = calibrate_formats(d.network, r_sat).formats()[0][2]
    assert n_all.int_bits > n_sat.int_bits

"""Export and its verification: ONNX validity, onnxruntime vs torch, the QONNX executor vs
the fake-quantised network, the emulator vs the fake-quantised network (bit for bit, same
boxes), a corrupted package refused, and the CLI end to end."""
import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from host_search.export import ExportError, export_run, golden_inputs
from host_search.export.onnx_quant import QONNX_DOMAIN
from host_search.nn import best_boxes
from host_search.train import TrainConfig, load_run, train
from pynq_codesign.cli import main as cli_main
from pynq_codesign.fixedpoint import QONNX_ROUNDING
from pynq_codesign.package import PackageError, load_package
from pynq_codesign.platform.sim.emulator import run_program
from pynq_codesign.prepost import decode
from tests.test_train import random_data, tiny


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny trained run (random data, real training loop) and its package."""
    root = tmp_path_factory.mktemp("export")
    d = tiny(24, 40)
    train(d, random_data(d, n_train=8, n_val=3), root / "run",
          TrainConfig(epochs=1, qat_epochs=1, batch_size=4, threads=1))
    pkg = export_run(root / "run", root / "pkg", golden=2)
    return load_run(root / "run"), pkg


def _x(pkg, k):
    """Golden input k as the real-valued NCHW float tensor the models take."""
    fin = pkg.design.network.input_format
    x = pkg.golden[k][0].astype(np.float64) * fin.scale
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


def test_package_round_trip(exported):
    run, pkg = exported
    p = load_package(pkg.root)
    assert p.design == run.design
    assert len(p.golden) == 2
    assert {"model.onnx", "model_quant.onnx", "params.bin"} <= set(p.manifest["files"])
    assert "frames of the built-in synthetic generator" in p.manifest["info"]["golden_source"]


def test_onnx_checker_passes_on_both_models(exported):
    _, pkg = exported
    for name in ("model.onnx", "model_quant.onnx"):
        onnx.checker.check_model(onnx.load(pkg.root / name))
    q = onnx.load(pkg.root / "model_quant.onnx")
    quants = [n for n in q.graph.node if n.op_type == "Quant"]
    assert quants and all(n.domain == QONNX_DOMAIN for n in quants)
    want = QONNX_ROUNDING[pkg.design.overlay.rounding_mode]
    for n in quants:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["rounding_mode"].decode() == want and attrs["signed"] == 1
    assert q.ir_version <= 13          # onnxruntime 1.31 reads IR 13 at most


def test_onnxruntime_float_model_matches_torch(exported):
    import onnxruntime as ort
    run, pkg = exported
    sess = ort.InferenceSession(str(pkg.root / "model.onnx"))
    m = run.model
    m.quantized = False
    try:
        for k in range(2):
            x = _x(pkg, k).float()
            with torch.no_grad():
                want = m(x).numpy()
            got = sess.run(None, {"input": x.numpy()})[0]
            assert got.shape == want.shape
            assert np.abs(got - want).max() < 1e-4
        # batch axis is dynamic
        xb = torch.cat([_x(pkg, 0), _x(pkg, 1)]).float().numpy()
        assert sess.run(None, {"input": xb})[0].shape[0] == 2
    finally:
        m.quantized = True


def test_qonnx_executor_matches_fake_quantised_network(exported):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    run, pkg = exported
    mw = ModelWrapper(str(pkg.root / "model_quant.onnx")).transform(InferShapes())
    fout = run.design.network.formats()[-1][2]
    for k in range(2):
        x = _x(pkg, k).float()
        with torch.no_grad():
            want = run.model(x).numpy()          # float32 fake-quantised torch network
        got = execute_onnx(mw, {"input": x.numpy()})["output"]
        assert got.shape == want.shape
        assert np.array_equal(got / fout.scale, want / fout.scale)
        assert np.abs(want).max() > 0


def test_emulator_equals_fake_quantised_network_bit_for_bit(exported):
    run, pkg = exported
    net, ov = pkg.design.network, pkg.design.overlay
    fout = net.formats()[-1][2]
    for k, (x_codes, y_golden) in enumerate(pkg.golden):
        y_emu = run_program(pkg.program, x_codes, ov)
        assert np.array_equal(y_emu, y_golden)
        with torch.no_grad():
            y32 = run.model(_x(pkg, k).float())                     # float32 fake quant
            m64 = run.model.__class__(run.design, batch_norm=False)
            m64.load_state_dict(run.model.state_dict())
            m64.double().eval()
            m64.quantized = True
            y64 = m64(_x(pkg, k))                                   # integer-exact
        for y in (y32, y64):
            codes = y[0].permute(1, 2, 0).double().numpy() / fout.scale
            assert np.array_equal(codes, y_emu.astype(np.float64))
        box_t, conf_t = best_boxes(y64, net.decode)
        box_e, conf_e = decode(y_emu * fout.scale, net.decode)
        assert np.allclose(box_t[0].numpy(), box_e, atol=1e-12)
        assert abs(float(conf_t[0]) - conf_e) < 1e-12


def test_corrupted_package_is_refused_naming_the_file(exported, tmp_path):
    _, pkg = exported
    bad = tmp_path / "bad"
    shutil.copytree(pkg.root, bad)
    f = bad / "params.bin"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01
    f.write_bytes(bytes(b))
    with pytest.raises(PackageError, match="params.bin"):
        load_package(bad)


def test_export_refuses_non_empty_out_and_unfinished_runs(exported, tmp_path):
    run, pkg = exported
    with pytest.raises(ExportError, match="not an empty folder"):
        export_run(run.root, pkg.root)
    with pytest.raises(ExportError, match="run folder"):
        export_run(tmp_path / "nothing", tmp_path / "pkg")


def test_golden_inputs_come_from_the_data_set_when_present(tmp_path):
    from host_search.data.synth import generate
    generate(tmp_path / "data", 3, 5)
    d = tiny(24, 40)
    g = golden_inputs(d, {"data": {"data": str(tmp_path / "data"),
                                   "val_keys": []}}, 2)
    assert "validation images" in g.source and len(g.inputs) == 2
    synth = golden_inputs(d, {}, 2)
    assert "synthetic" in synth.source
    again = golden_inputs(d, {}, 2)
    assert all(np.array_equal(a, b) for a, b in zip(synth.inputs, again.inputs))
    fin = d.network.input_format
    assert all(x.shape == (24, 40, 3) and x.min() >= fin.code_min() for x in synth.inputs)


def test_cli_end_to_end_synth_train_export_load(tmp_path, capsys):
    design = tmp_path / "tiny.json"
    design.write_text(tiny(32, 64).to_json())
    data, run, pkg = tmp_path / "data", tmp_path / "run", tmp_path / "pkg"
    assert cli_main(["data", "synth", "--out", str(data), "--n", "6", "--seed", "2"]) == 0
    assert cli_main(["train", str(design), "--data", str(data), "--epochs", "1",
                     "--batch-size", "4", "--out", str(run)]) == 0
    out = capsys.readouterr()
    assert "float" in out.out and "fixed point" in out.out and "synthetic" in out.out
    assert cli_main(["export", str(run), "--out", str(pkg), "--golden", "1"]) == 0
    p = load_package(pkg)
    assert p.design.network.layers[1].weight_format is not None
    assert "validation images" in p.manifest["info"]["golden_source"]
    x, y = p.golden[0]
    assert np.array_equal(run_program(p.program, x, p.design.overlay), y)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["results"]["val_iou_fixed_point"] == pytest.approx(
        p.manifest["info"]["validation_iou"]["val_iou_fixed_point"])
    # the same command on the finished run does not train again
    assert cli_main(["train", str(design), "--data", str(data), "--epochs", "1",
                     "--batch-size", "4", "--out", str(run)]) == 0
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 2
    # export errors are one line, exit 2
    assert cli_main(["export", str(run), "--out", str(pkg)]) == 2
    assert "codesign: error" in capsys.readouterr().err


def test_fast_mode_trains_at_half_resolution(tmp_path):
    design = tmp_path / "tiny.json"
    design.write_text(tiny(32, 64).to_json())
    from host_search.data.synth import generate
    generate(tmp_path / "data", 4, 1)
    assert cli_main(["train", str(design), "--data", str(tmp_path / "data"), "--epochs", "1",
                     "--fast", "--out", str(tmp_path / "run")]) == 0
    r = load_run(tmp_path / "run")
    assert (r.design.network.input_height, r.design.network.input_width) == (16, 32)
    assert r.metrics["fast"] is True
    assert any((tmp_path / "run" / "cache").iterdir())


@pytest.mark.parametrize("rounding,narrow", [("half_away", True), ("toward_zero", False)])
def test_qonnx_model_of_every_layer_kind(rounding, narrow):
    """conv3 with stride 2, ReLU6 (Clip), narrow range and other rounding modes."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    from host_search.export.onnx_quant import build_quant_onnx
    from tests.test_nn import _mixed_design, _trained_like
    m = _trained_like(_mixed_design(rounding, narrow))
    m.quantized = True
    proto = build_quant_onnx(m)
    onnx.checker.check_model(proto)
    assert {"Clip", "MaxPool", "Conv", "Quant"} <= {n.op_type for n in proto.graph.node}
    mw = ModelWrapper(proto).transform(InferShapes())
    net = m.network
    fout = net.formats()[-1][2]
    x = torch.from_numpy(np.random.default_rng(1).normal(
        0, 1.5, (1, 3, net.input_height, net.input_width))).float()
    with torch.no_grad():
        want = m(x).numpy()
    got = execute_onnx(mw, {"input": x.numpy()})["output"]
    assert np.array_equal(got / fout.scale, want / fout.scale)

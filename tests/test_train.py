"""Training: determinism, resuming a killed run, run folder contents, data through the
real loader, user errors."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from host_search.train import (TrainConfig, TrainData, TrainError, load_data, load_images,
                               load_run, reduced_design, train)
from pynq_codesign.cli import main as cli_main
from pynq_codesign.design import Design, load_design
from pynq_codesign.fixedpoint import FixedFormat


def tiny(h=16, w=32) -> Design:
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=h, width=w)
    d["network"]["bundles"][1]["layers"][1]["out_channels"] = 8
    d["network"]["bundles"][2]["layers"][1]["out_channels"] = 8
    d["network"]["bundles"][3]["layers"][1]["out_channels"] = 8
    d["network"]["bundles"][0]["layers"][1]["out_channels"] = 8
    d["name"] = "tiny"
    return Design.from_dict(d)


def random_data(design: Design, n_train=12, n_val=4, seed=0) -> TrainData:
    rng = np.random.default_rng(seed)
    net = design.network
    fmt = net.input_format

    def codes(n):
        return rng.integers(-60, 60, (n, 3, net.input_height, net.input_width)).astype(np.int16)

    def boxes(n):
        c = rng.uniform(0.2, 0.8, (n, 2))
        s = rng.uniform(0.05, 0.2, (n, 2))
        return np.concatenate([c - s / 2, c + s / 2], 1)

    return TrainData(codes(n_train), boxes(n_train), codes(n_val), boxes(n_val), fmt,
                     {"data": None, "train_images": n_train, "val_images": n_val})


CFG = TrainConfig(epochs=2, qat_epochs=2, batch_size=4, lr=3e-3, threads=1)


class Stop(Exception):
    pass


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    d = tiny()
    data = random_data(d)
    full = train(d, data, tmp_path / "full", CFG)

    def stop_after(phase, epoch):
        def cb(ph, ep, rec):
            if (ph, ep) == (phase, epoch):
                raise Stop
        return cb

    for where in (("float", 1), ("qat", 1)):
        out = tmp_path / f"killed-{where[0]}"
        with pytest.raises(Stop):
            train(d, data, out, CFG, on_epoch_end=stop_after(*where))
        state = torch.load(out / "checkpoint.pt", weights_only=False)
        assert (state["phase"], state["epochs_done"]) == where
        resumed = train(d, data, out, CFG)
        a, b = full.model.state_dict(), resumed.model.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), where
        assert resumed.design == full.design
        assert resumed.metrics["results"]["val_iou_fixed_point"] == full.fixed_iou
        assert len(resumed.metrics["history"]) == CFG.epochs + CFG.n_qat


def test_seed_decides_the_result(tmp_path):
    d = tiny()
    data = random_data(d)
    a = train(d, data, tmp_path / "a", replace(CFG, epochs=1, qat_epochs=1))
    b = train(d, data, tmp_path / "b", replace(CFG, epochs=1, qat_epochs=1))
    c = train(d, data, tmp_path / "c", replace(CFG, epochs=1, qat_epochs=1, seed=1))
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_run_folder_and_load_run(tmp_path):
    d = tiny()
    res = train(d, random_data(d), tmp_path / "r", replace(CFG, epochs=1, qat_epochs=1))
    saved = load_design(tmp_path / "r" / "design.json")
    assert saved == res.design
    convs = [lay for lay in saved.network.layers if lay.is_conv]
    assert all(lay.weight_format is not None and lay.out_format is not None for lay in convs)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    r = m["results"]
    assert set(r["labels"]) == {"val_iou_float", "val_iou_fixed_point",
                                "val_iou_fixed_point_before_qat"}
    assert set(r["labels"]) <= set(r)
    assert 0.0 <= r["val_iou_fixed_point"] <= 1.0
    assert [h["phase"] for h in m["history"]] == ["float", "qat"]
    run = load_run(tmp_path / "r")
    assert run.design == res.design and run.model.quantized and run.model.folded


def test_other_settings_on_same_folder_are_refused(tmp_path):
    d = tiny()
    data = random_data(d)
    train(d, data, tmp_path / "r", replace(CFG, epochs=1, qat_epochs=1))
    with pytest.raises(TrainError, match="other settings"):
        train(d, data, tmp_path / "r", replace(CFG, epochs=1, qat_epochs=1, lr=1e-3))


def test_unfinished_run_is_not_exportable(tmp_path):
    d = tiny()
    with pytest.raises(Stop):
        train(d, random_data(d), tmp_path / "r", CFG,
              on_epoch_end=lambda *a: (_ for _ in ()).throw(Stop()))
    with pytest.raises(TrainError, match="not finished"):
        load_run(tmp_path / "r")


def test_bad_config_is_a_user_error():
    with pytest.raises(TrainError):
        TrainConfig(epochs=0, qat_epochs=0).validate()
    with pytest.raises(TrainError):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(TrainError):
        TrainConfig(lr=-1).validate()


def test_reduced_design_halves_the_input():
    d = load_design("dnn-a")
    r = reduced_design(d)
    assert (r.network.input_height, r.network.input_width) == (80, 180)
    assert r.network.preprocess == d.network.preprocess
    with pytest.raises(TrainError, match="fast mode"):
        reduced_design(tiny(8, 8), factor=2)


def test_load_data_uses_the_loader_and_caches(tmp_path):
    from host_search.data.synth import generate
    generate(tmp_path / "data", 6, 3)
    d = tiny(24, 40)
    data = load_data(tmp_path / "data", d, seed=0, cache_dir=tmp_path / "cache")
    assert data.train_x.dtype == np.int16
    assert data.train_x.shape[1:] == (3, 24, 40)
    assert len(data.train_x) + len(data.val_x) == 6
    fmt: FixedFormat = d.network.input_format
    assert data.train_x.min() >= fmt.code_min() and data.train_x.max() <= fmt.code_max()
    assert np.all((data.train_boxes >= 0) & (data.train_boxes <= 1))
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2
    again = load_data(tmp_path / "data", d, seed=0, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.train_x, data.train_x)
    named = load_data(tmp_path / "data", d, val_subcategories=["boat1"])
    assert named.info["split"] == "given" and named.info["val_subcategories"] == ["boat1"]
    codes, boxes = load_images(tmp_path / "data", d)      # every image, unsplit
    both = np.concatenate([data.train_x, data.val_x])
    assert codes.shape == both.shape and len(boxes) == 6
    assert sorted(map(bytes, codes)) == sorted(map(bytes, both))


def test_cli_user_errors(tmp_path, capsys):
    assert cli_main(["train", "no-such-design", "--data", str(tmp_path), "--out",
                     str(tmp_path / "r")]) == 2
    assert "no-such-design" in capsys.readouterr().err
    assert cli_main(["train", "dnn-a", "--data", str(tmp_path / "missing"), "--out",
                     str(tmp_path / "r")]) == 2
    assert "missing" in capsys.readouterr().err
    assert cli_main(["train", "dnn-a", "--data", str(tmp_path), "--epochs", "-1", "--out",
                     str(tmp_path / "r")]) == 2
    from host_search.data.synth import generate
    generate(tmp_path / "data", 4, 3)
    capsys.readouterr()
    assert cli_main(["train", "dnn-a", "--data", str(tmp_path / "data"), "--val", "boat9",
                     "--out", str(tmp_path / "r")]) == 2
    assert "boat9 not in" in capsys.readouterr().err


def test_no_qat_epochs_still_calibrates_and_finishes(tmp_path):
    d = tiny()
    res = train(d, random_data(d), tmp_path / "r", replace(CFG, epochs=1, qat_epochs=0))
    run = load_run(tmp_path / "r")
    assert run.design == res.design and run.model.folded
    assert [h["phase"] for h in res.metrics["history"]] == ["float"]
    again = train(d, random_data(d), tmp_path / "r", replace(CFG, epochs=1, qat_epochs=0))
    assert again.fixed_iou == res.fixed_iou


def test_weight_average_resumes_exactly(tmp_path):
    """With ``ema`` the float phase ends on averaged weights; a run killed mid-way resumes
    the average from its checkpoint and ends where an unbroken run ends."""
    d = tiny()
    data = random_data(d)
    cfg = replace(CFG, epochs=3, qat_epochs=1, ema=0.9)
    full = train(d, data, tmp_path / "full", cfg)
    plain = train(d, data, tmp_path / "plain", replace(cfg, ema=0.0))
    a, p = full.model.state_dict(), plain.model.state_dict()
    assert any(not torch.equal(a[k], p[k]) for k in a)       # the average made a difference

    def stop(ph, ep, rec):
        if (ph, ep) == ("float", 2):
            raise Stop
    with pytest.raises(Stop):
        train(d, data, tmp_path / "killed", cfg, on_epoch_end=stop)
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert state["ema"]["updates"] > 0
    resumed = train(d, data, tmp_path / "killed", cfg)
    b = resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.fixed_iou == full.fixed_iou


def test_a_lone_last_image_joins_the_batch_before(tmp_path):
    """Batch norm cannot train on one value per channel: with 5 training images at batch 2
    and a map that reaches 1x1, the last image trains with the two before it."""
    from host_search.train import _batches
    assert [len(b) for b in _batches(np.arange(5), 2)] == [2, 3]
    assert [len(b) for b in _batches(np.arange(6), 4)] == [4, 2]
    assert [len(b) for b in _batches(np.arange(3), 1)] == [1, 1, 1]
    assert sorted(np.concatenate(_batches(np.arange(9), 4))) == list(range(9))
    d = tiny(8, 8)              # three 2x2 pools: the last bundle runs on a 1x1 map
    res = train(d, random_data(d, n_train=5, n_val=2), tmp_path / "r",
                replace(CFG, batch_size=2, epochs=1, qat_epochs=1))
    assert [h["phase"] for h in res.metrics["history"]] == ["float", "qat"]

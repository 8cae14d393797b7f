"""Detection-quality parts of training: the split that keeps every category in training,
augmentation, fitted anchors, the selection loss, the LR schedule, the trained budget."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from host_search.data import Dataset, Sample, split_by_subcategory
from host_search.data.augment import Augment, augment_batch, windows
from host_search.nn import LossWeights, detection_loss
from host_search.nn.head import fit_anchors
from pynq_codesign.design import Decode


def _dataset(counts: dict[str, int]) -> Dataset:
    samples = [Sample(Path(f"/d/{sub}/{i:04d}.jpg"), sub, (10, 10, 20, 20), 640, 360,
                      key=f"{sub}/{i:04d}")
               for sub, n in counts.items() for i in range(n)]
    return Dataset(Path("/d"), tuple(samples))


SUBS = {"boat1": 10, "boat2": 10, "car1": 10, "car2": 10, "car3": 10, "drone1": 10,
        "person1": 10, "person2": 10, "whale1": 10}


@pytest.mark.parametrize("seed", range(6))
def test_subcategory_hold_out_keeps_every_category_in_training(seed):
    ds = _dataset(SUBS)
    sp = split_by_subcategory(ds, 0.2, seed=seed)
    assert sp.mode == "subcategory"
    train_cats = {s.category for s in sp.train}
    assert train_cats == {s.category for s in ds}           # every category trains
    assert not {s.subcategory for s in sp.train} & set(sp.val_subcategories)
    assert len(sp.val) >= 0.2 * len(ds)
    assert {"drone1", "whale1"}.isdisjoint(sp.val_subcategories)   # single-sub categories
    assert split_by_subcategory(ds, 0.2, seed=seed) == sp


def test_category_hold_out_and_fallback():
    ds = _dataset(SUBS)
    sp = split_by_subcategory(ds, 0.2, seed=0, hold_out="category")
    assert sp.mode == "category"
    val_cats = {s.category for s in sp.val}
    assert val_cats and not val_cats & {s.category for s in sp.train}
    # one sub-category per category: nothing can be held out per sub-category
    single = _dataset({"boat1": 5, "car1": 5, "drone1": 5})
    assert split_by_subcategory(single, 0.2, seed=0).mode == "category"
    with pytest.raises(Exception, match="hold-out"):
        split_by_subcategory(ds, 0.2, hold_out="nope")


def test_named_validation_subcategories():
    ds = _dataset(SUBS)
    sp = split_by_subcategory(ds, val_subcategories=["drone1", "boat1"])
    assert sp.mode == "given" and sp.val_subcategories == ("boat1", "drone1")
    assert {s.subcategory for s in sp.val} == {"boat1", "drone1"} and len(sp.train) == 70
    with pytest.raises(Exception, match="boat9 not in .* it has boat1, boat2"):
        split_by_subcategory(ds, val_subcategories=["boat9"])
    with pytest.raises(Exception, match="nothing to train on"):
        split_by_subcategory(ds, val_subcategories=list(SUBS))


def test_augmentation_keeps_the_box_on_the_object():
    """A bright square on a dark field: after zoom/shift/flip the box still frames it."""
    g = torch.Generator().manual_seed(0)
    n, h, w = 8, 40, 90
    x = torch.zeros(n, 1, h, w)
    boxes = torch.tensor([[0.3, 0.25, 0.5, 0.75]] * n)
    x[:, :, 10:30, 27:45] = 1.0
    aug = Augment(zoom=1.5, shift=0.15, flip=0.5, colour=0.0)
    out, nb = augment_batch(x, boxes, aug, g)
    assert out.shape == x.shape
    for i in range(n):
        x0, y0, x1, y1 = (nb[i] * torch.tensor([w, h, w, h])).round().long().tolist()
        inside = out[i, 0, y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        assert inside.numel() and inside.mean() > 0.9      # the object is in its box
        assert out[i, 0].sum() <= inside.sum() * 1.6        # and little of it outside
    again, nb2 = augment_batch(x, boxes, aug, torch.Generator().manual_seed(0))
    assert torch.equal(again, out) and torch.equal(nb2, nb)  # repeatable for a seed


def test_windows_hold_the_box():
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(64, 2) * 0.8
    boxes = torch.cat([boxes, boxes + 0.1], 1)
    win, _ = windows(boxes, Augment(zoom=2.0, shift=0.2), g)
    assert torch.all(win[:, 0] <= boxes[:, 0] + 1e-9)
    assert torch.all(win[:, 0] + win[:, 2] >= boxes[:, 2] - 1e-9)


def test_fit_anchors_follow_the_box_sizes():
    rng = np.random.default_rng(0)
    small = np.c_[rng.uniform(0, .5, 50), rng.uniform(0, .5, 50)]
    wh_small, wh_big = np.array([0.03, 0.05]), np.array([0.2, 0.3])
    boxes = np.r_[np.c_[small, small + wh_small], np.c_[small, small + wh_big]]
    a = fit_anchors(boxes, 2)
    assert np.allclose(a, [wh_small, wh_big], atol=1e-3)
    assert fit_anchors(boxes, 2) == a


def test_selection_loss_prefers_the_responsible_cell():
    dec = Decode(((0.1, 0.1),))
    boxes = torch.tensor([[0.05, 0.05, 0.15, 0.15]])       # centre in cell (0, 0) of 4x4
    out = torch.zeros(1, 5, 4, 4)
    w = LossWeights(coord=0, obj=0, noobj=0, giou=0, select=1.0)
    flat, _ = detection_loss(out, boxes, dec, w)
    out[0, 4, 0, 0] = 5.0
    right, parts = detection_loss(out, boxes, dec, w)
    out[0, 4, 0, 0], out[0, 4, 3, 3] = 0.0, 5.0
    wrong, _ = detection_loss(out, boxes, dec, w)
    assert right < flat < wrong and "select" in parts
    assert abs(float(flat) - np.log(16)) < 1e-5


def test_warm_cosine_schedule():
    from host_search.train import _WarmCosine
    f = _WarmCosine(warm=4, total=20, floor=0.05)
    assert [round(f(i), 2) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and abs(f(20) - 0.05) < 1e-9
    assert all(f(i) >= f(i + 1) for i in range(4, 20))


def test_fake_quant_nonnegative_hint_changes_nothing():
    """The ReLU hint skips the gradient's lower range test: same values, same gradients."""
    from host_search.nn.quant import fake_quant
    from pynq_codesign.fixedpoint import FixedFormat, Rounding
    g = torch.Generator().manual_seed(0)
    for fmt in (FixedFormat(8, 4), FixedFormat(8, 4, False), FixedFormat(16, 2)):
        x = torch.relu(torch.randn(4096, generator=g) * 2.0 ** (fmt.int_bits + 1))
        x[:3] = torch.tensor([0.5, 1.5, 2.5]) * fmt.scale               # ties go to even
        for narrow in (False, True):
            grads = []
            for hint in (False, True):
                xi = x.clone().requires_grad_(True)
                y = fake_quant(xi, fmt, Rounding.HALF_EVEN, narrow, nonnegative=hint)
                y.backward(torch.ones_like(y))
                grads.append((y.detach(), xi.grad))
            assert torch.equal(grads[0][0], grads[1][0])
            assert torch.equal(grads[0][1], grads[1][1])
            assert 0 < grads[0][1].sum() < len(x)      # some values saturate, most pass


def _bench():
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_detection.py"
    spec = importlib.util.spec_from_file_location("bench_detection", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_detection_helpers():
    b = _bench()
    assert b.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert b.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert abs(b.spearman([1, 2, 2, 3], [1, 3, 2, 4]) - 0.9487) < 1e-4   # ties: mean ranks
    designs = b.rank_designs(8)
    assert len(designs) == 8 and len({d.name for d in designs}) == 8
    assert len({d.network.macs() for d in designs}) >= 6            # they differ in size
    drawn = b.space_designs(4)
    assert [d.name for d in drawn] == [f"space-{i}" for i in range(4)]
    assert len({json.dumps(d.network.to_dict(), sort_keys=True) for d in drawn}) == 4
    assert all(d.network.macs() <= 300e6 for d in drawn)
    assert [d.to_dict() for d in b.space_designs(4)] == [d.to_dict() for d in drawn]
    truth = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.7, 0.9]])
    pred = np.array([[0.1, 0.1, 0.3, 0.3], [0.0, 0.0, 0.1, 0.1]])
    d = b.diagnose(pred, truth, ["car1/0001", "boat1/0001"])
    assert d["iou"] == 0.5 and d["centre_inside"] == 0.5
    assert d["per_subcategory"] == {"boat1": 0.0, "car1": 1.0}


def test_rank_check_scores_the_extra_set(tmp_path, monkeypatch):
    """``--rank-eval``: every fast and full network is also scored on another folder, and
    the correlations on both are printed and written."""
    from dataclasses import replace
    from host_search.data.synth import generate
    from tests.helpers import tiny_design
    generate(tmp_path / "data", 10, 3)
    generate(tmp_path / "held", 4, 5)
    b = _bench()
    d = tiny_design()
    monkeypatch.setattr(b, "rank_designs", lambda k: [replace(d, name="t0"),
                                                      replace(d, name="t1")])
    out = tmp_path / "rank.json"
    assert b.main(["--design", "", "--rank", "8", "--data", str(tmp_path / "data"),
                   "--epochs", "1", "--qat-epochs", "1", "--rank-fast-epochs", "1+1",
                   "--threads", "1", "--seeds", "1,2", "--rank-eval", str(tmp_path / "held"),
                   "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    rank = json.loads(out.read_text())["rank"]
    assert rank["eval"] == str(tmp_path / "held")
    for seed in ("1", "2"):
        r = rank["seeds"][seed]
        assert len(r["eval_fast"]) == len(r["eval_full"]) == 2
        assert all(0.0 <= v <= 1.0 for v in r["eval_fast"] + r["eval_full"])
        # a tiny network may score 0 everywhere: then the correlation is undefined (nan)
        assert all(v != v or -1.0 <= v <= 1.0 for v in (r["spearman_eval"], r["spearman"]))
    assert "spearman_of_means_eval" in rank
    assert set(rank["seed_agreement"]) == {"validation", "held"}


def test_design_table_scores_the_eval_set(tmp_path, capsys):
    """``--eval DIR``: each seed's fixed-point network is also scored on every image of DIR,
    printed as a column named after DIR and written per seed and as mean and sd."""
    from host_search.data.synth import generate
    from tests.helpers import tiny_design
    generate(tmp_path / "data", 10, 3)
    generate(tmp_path / "held", 4, 5)
    design = tmp_path / "tiny.json"
    design.write_text(json.dumps(tiny_design().to_dict()))
    out = tmp_path / "table.json"
    assert _bench().main(["--design", str(design), "--data", str(tmp_path / "data"),
                          "--epochs", "1", "--qat-epochs", "1", "--threads", "1",
                          "--seeds", "1,2", "--eval", str(tmp_path / "held"),
                          "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["eval"] == str(tmp_path / "held")
    rows = res["designs"][0]["rows"]
    assert [r["seed"] for r in rows] == [1, 2]
    assert all(0.0 <= r["eval_iou"] <= 1.0 for r in rows)
    assert all(r["train_s"] >= 0.0 for r in rows)           # the epochs' own seconds
    mean, sd = res["designs"][0]["summary"]["eval_iou"]
    assert mean == pytest.approx(np.mean([r["eval_iou"] for r in rows])) and sd >= 0.0
    header = [ln for ln in capsys.readouterr().out.splitlines() if ln.lstrip().startswith("seed")]
    assert header and header[0].split()[-1] == "held"


def test_full_stem_replaces_the_first_depthwise_pair_by_one_full_convolution():
    from pynq_codesign.design import check_fits, load_design
    b = _bench()
    a = load_design("dnn-a")
    d = b.full_stem(a)
    first = d.network.bundles[0].layers
    assert d.name == "dnn-a-stem"
    assert [lay.type for lay in first] == ["conv3", "pool"]
    assert first[0].out_channels == 48 and first[0].activation == "relu"
    assert d.network.bundles[1:] == a.network.bundles[1:]
    assert round(d.network.macs() / 1e6, 1) == 288.1                   # 223.3 + 64.8
    assert [st.kind for st in d.overlay.stages] == ["conv3", "dw", "pw", "pool"]
    assert check_fits(d.network, d.overlay) == []
    with pytest.raises(SystemExit, match="does not start with a DW3"):
        b.full_stem(d)


def test_seed_agreement_averages_every_pair_of_seeds():
    b = _bench()
    per_seed = {1: {"fast": [1, 2, 3], "full": [1, 2, 3]},
                2: {"fast": [1, 2, 3], "full": [3, 2, 1]},
                3: {"fast": [3, 2, 1], "full": [1, 2, 3]}}
    agree = b.seed_agreement(per_seed)
    # full: pairs (1,2) -1, (1,3) +1, (2,3) -1; fast: +1, -1, -1
    assert agree == {"validation": {"full": -1 / 3, "fast": -1 / 3}}


def test_neighbour_cells_learn_the_box_too():
    """With ``neighbours`` the cells next to the true centre get a box gradient (the board
    may pick one of them); without it only the responsible cell does."""
    dec = Decode(((0.1, 0.1), (0.3, 0.3)))
    boxes = torch.tensor([[0.3775, 0.3775, 0.4975, 0.4975]])   # centre: cell (3, 3)'s of 8x8
    for radius, expect in ((0.0, 1), (1.5, 9)):
        out = torch.zeros(1, 10, 8, 8, requires_grad=True)
        w = LossWeights(coord=1, obj=0, noobj=0, giou=1, select=0, neighbours=radius)
        loss, _ = detection_loss(out, boxes, dec, w)
        loss.backward()
        box_grad = out.grad.view(2, 5, 8, 8)[:, :4].abs().sum(1)      # [anchor, y, x]
        assert int((box_grad > 0).sum()) == expect
        assert box_grad[0, 3, 3] > 0                       # anchor 0 matches the box shape

"""Data sets: the synthetic generator, the DAC-SDC loader and split, the IoU metric, results XML."""
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from host_search.data import synth
from host_search.data.dacsdc import (CorruptImage, DataError, iter_inputs, jpeg_size,
                                     load_dataset, load_inputs, read_image,
                                     split_by_subcategory)
from host_search.data.metric import annotation_for, mean_iou, score_results, write_results
from pynq_codesign import cli
from pynq_codesign.designs import reference_design
from pynq_codesign.prepost import preprocess
from pynq_codesign.results_xml import (Annotation, AnnotationError, parse_xml, read_results,
                                       read_xml, to_xml, write_result)

N = 12


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synth"
    synth.generate(root, N, seed=1)
    return root


@pytest.fixture
def synth_copy(synth_root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(synth_root, dst)
    return dst


# --- the synthetic set ------------------------------------------------------------------

def test_synth_layout(synth_root):
    subs = sorted(p for p in synth_root.iterdir() if p.is_dir())
    assert len(subs) >= 4
    jpgs = sorted(synth_root.glob("*/*.jpg"))
    xmls = sorted(synth_root.glob("*/*.xml"))
    assert len(jpgs) == len(xmls) == N
    assert [p.with_suffix("") for p in jpgs] == [p.with_suffix("") for p in xmls]
    for j, x in zip(jpgs, xmls):
        ann = read_xml(x)
        assert ann.filename == j.name
        assert (ann.width, ann.height) == (synth.WIDTH, synth.HEIGHT) == (640, 360)
        img = cv2.imread(str(j))
        assert img is not None and img.shape == (360, 640, 3)
        assert ann.box_problem() is None
        spec = {sp.name: sp for sp in synth.SPECS}[j.parent.name]
        assert ann.name == synth._label(spec.kind)


def test_synth_same_seed_same_bytes(tmp_path):
    a = [(f.subcategory, f.stem, f.jpeg, f.annotation) for f in synth.frames(5, seed=3)]
    b = [(f.subcategory, f.stem, f.jpeg, f.annotation) for f in synth.frames(5, seed=3)]
    assert a == b
    c = [f.jpeg for f in synth.frames(5, seed=4)]
    assert all(x[2] != y for x, y in zip(a, c))
    synth.generate(tmp_path / "one", 4, seed=9)
    synth.generate(tmp_path / "two", 4, seed=9)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert files
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_synth_boxes_and_object_sizes():
    frames = list(synth.frames(32, seed=11))
    areas = []
    for f in frames:
        ann = f.annotation
        assert ann.box_problem() is None, (f.subcategory, f.stem, ann.box)
        x0, y0, x1, y1 = ann.box
        assert x1 - x0 >= 4 and y1 - y0 >= 4          # an object, not a speck
        areas.append(f.area_fraction)
    areas = np.array(areas)
    assert 0.002 < np.median(areas) < 0.03              # DAC-SDC-like: about 1%
    assert np.mean(areas < 0.05) >= 0.85                # most objects under 5%
    assert areas.max() <= synth.AREA_MAX * 1.6


def test_synth_box_is_tight_around_the_object(monkeypatch):
    """On a black background, the drawn pixels fill the box and nothing lies outside it."""
    src = synth.Sources()
    black = lambda sc, frame, src, rng: np.zeros((synth.HEIGHT, synth.WIDTH, 3), np.float32)
    monkeypatch.setattr(synth, "background", black)
    for idx, spec in enumerate(synth.SPECS):
        sc = synth._scene(spec, np.random.default_rng([4, idx]))
        img, box = synth._compose(sc, 2, src, np.random.default_rng([4, idx, 3]))
        ys, xs = np.nonzero(img.max(axis=2) > 0.1)       # noise is 0.012 sigma
        drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # blur may spread a pixel or two beyond the box, never more
        assert drawn[0] >= box[0] - 2 and drawn[1] >= box[1] - 2, (spec.name, drawn, box)
        assert drawn[2] <= box[2] + 2 and drawn[3] <= box[3] + 2, (spec.name, drawn, box)
        # and the box holds nothing but the object (photo cut-outs have near-black parts)
        slack = 6 if spec.kind.startswith("cutout:") else 2
        assert np.all(np.abs(np.subtract(drawn, box)) <= slack), (spec.name, drawn, box)


def test_synth_cli_and_overwrite_rules(tmp_path, capsys):
    out = tmp_path / "set"
    assert cli.main(["data", "synth", "--out", str(out), "--n", "6", "--seed", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert "6 images" in line and "sub-categories" in line and "median" in line
    assert len(list(out.glob("*/*.jpg"))) == 6
    # a set we wrote is replaced; a smaller one leaves no stale frames behind
    assert cli.main(["data", "synth", "--out", str(out), "--n", "3", "--seed", "2"]) == 0
    assert len(list(out.glob("*/*.jpg"))) == 3
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert cli.main(["data", "synth", "--out", str(foreign), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "non-empty" in err and err.count("\n") == 1
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert cli.main(["data", "synth", "--out", str(tmp_path / "x"), "--n", "0"]) == 2


# --- the loader ---------------------------------------------------------------------------

def test_loader_on_synth(synth_root):
    ds = load_dataset(synth_root)
    assert len(ds) == N and ds.skipped == ()
    assert set(ds.subcategories) == {p.name for p in synth_root.iterdir() if p.is_dir()}
    for s in ds:
        assert s.image.is_file() and s.key == f"{s.subcategory}/{s.image.stem}"
        assert (s.width, s.height) == (640, 360)
        assert jpeg_size(s.image) == (640, 360)
        rb = s.relative_box
        assert np.all((0 <= rb) & (rb <= 1)) and rb[0] < rb[2] and rb[1] < rb[3]
        assert s.category == s.subcategory.rstrip("0123456789")
        assert 0 < s.area_fraction < 0.2


def test_split_by_subcategory(synth_root):
    ds = load_dataset(synth_root)
    sp = split_by_subcategory(ds, 0.25, seed=0)
    # no category of the tiny set has two sub-categories: whole categories are held out
    assert sp.mode == ("subcategory" if len({s.category for s in ds}) < len(ds.subcategories)
                       else "category")
    tr = {s.subcategory for s in sp.train}
    va = {s.subcategory for s in sp.val}
    assert tr and va and not (tr & va)
    assert tr | va == set(ds.subcategories)
    assert len(sp.train) + len(sp.val) == len(ds)
    assert len(sp.val) >= 0.25 * len(ds)
    again = split_by_subcategory(ds, 0.25, seed=0)
    assert [s.key for s in again.val] == [s.key for s in sp.val]
    splits = {split_by_subcategory(ds, 0.25, seed=k).val_subcategories for k in range(8)}
    assert len(splits) > 1                                # the seed matters
    # a large fraction still leaves training one sub-category
    big = split_by_subcategory(ds, 0.99, seed=0)
    assert len(big.train.subcategories) >= 1 and len(big.val) > 0
    with pytest.raises(DataError, match="fraction"):
        split_by_subcategory(ds, 1.0)


def test_split_fallback_single_subcategory(synth_root):
    ds = load_dataset(synth_root)
    one = ds.select([ds.subcategories[0]])
    assert len(one) >= 2
    sp = split_by_subcategory(one, 0.2, seed=0)
    assert sp.mode == "image" and len(sp.val) >= 1 and len(sp.train) >= 1
    assert [s.key for s in sp.train.samples + sp.val.samples] == [s.key for s in one]
    with pytest.raises(DataError, match="at least 2"):
        split_by_subcategory(one.select([]), 0.2)


def _xml_with(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_corrupt_items_are_reported_and_skipped(synth_copy, caplog):
    ds0 = load_dataset(synth_copy)
    s = list(ds0)
    bad = {}
    # a truncated JPEG
    b = s[0].image.read_bytes()
    s[0].image.write_bytes(b[: len(b) // 2])
    bad[s[0].image] = "truncated"
    # not a JPEG at all
    s[1].image.write_bytes(b"this is not an image")
    bad[s[1].image] = "not a JPEG"
    # malformed XML
    x2 = s[2].image.with_suffix(".xml")
    x2.write_text("<annotation><size><width>640</width>")
    bad[x2] = "malformed XML"
    # a box outside the image
    x3 = s[3].image.with_suffix(".xml")
    _xml_with(x3, f"<xmax>{s[3].box[2]}</xmax>", "<xmax>700</xmax>")
    bad[x3] = "outside"
    # a missing field
    x4 = s[4].image.with_suffix(".xml")
    _xml_with(x4, f"<ymax>{s[4].box[3]}</ymax>", "")
    bad[x4] = "missing <bndbox/ymax>"
    # an image whose size differs from its XML
    x5 = s[5].image.with_suffix(".xml")
    _xml_with(x5, "<width>640</width>", "<width>800</width>")
    bad[s[5].image] = "640x360 but its XML says 800x360"
    # an image without annotation, an annotation without image
    s[6].image.with_suffix(".xml").unlink()
    bad[s[6].image] = "no annotation"
    s[7].image.unlink()
    bad[s[7].image.with_suffix(".xml")] = "without an image"
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(synth_copy)
    reasons = {sk.path: sk.reason for sk in ds.skipped}
    assert set(reasons) == set(bad)
    for path, why in bad.items():
        assert why in reasons[path], (path, reasons[path])
    assert len(ds) == len(ds0) - len(bad)
    assert not {str(p) for p in bad} & {str(x.image) for x in ds}
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert f"skipped {len(bad)} item(s)" in warning and str(s[0].image) in warning


def test_empty_or_missing_root_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="does not exist.*codesign data synth"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty" / "boat1").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(tmp_path / "empty")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(f)
    # nothing valid at all: named, with the first reason
    (tmp_path / "bad" / "car1").mkdir(parents=True)
    (tmp_path / "bad" / "car1" / "0001.jpg").write_bytes(b"\xff\xd8junk")
    (tmp_path / "bad" / "car1" / "0001.xml").write_text("<annotation/>")
    with pytest.raises(DataError, match="no valid image.*0001.xml"):
        load_dataset(tmp_path / "bad")


def test_read_image_and_network_inputs(synth_copy):
    ds = load_dataset(synth_copy)
    net = reference_design("dnn-a").network
    xs = list(iter_inputs(ds.samples[:3], net))
    assert len(xs) == 3
    for x, box, s in xs:
        assert x.shape == (net.input_height, net.input_width, 3) and x.dtype == np.float64
        assert np.array_equal(x, preprocess(read_image(s), net))
        assert np.array_equal(box, s.relative_box)
    # a file with a valid header and end marker but no image data: decoding fails later
    victim = ds.samples[0]
    sof = b"\xff\xc0\x00\x11\x08" + (360).to_bytes(2, "big") + (640).to_bytes(2, "big") + \
        b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    victim.image.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    assert jpeg_size(victim.image) == (640, 360)
    with pytest.raises(CorruptImage, match="decode"):
        read_image(victim)
    skipped = []
    x, boxes, kept = load_inputs(ds.samples[:3], net, skipped=skipped)
    assert x.shape == (2, net.input_height, net.input_width, 3) and x.dtype == np.float32
    assert boxes.shape == (2, 4) and victim not in kept
    assert [sk.path for sk in skipped] == [victim.image]


# --- the metric and the results format ---------------------------------------------------

def test_iou_metric_hand_computed():
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10],      # identical: 1
                     [5, 5, 15, 15],      # 25 / (100 + 100 - 25) = 1/7
                     [20, 20, 30, 30],    # disjoint: 0
                     [0, 0, 10, 5]], float)  # inside, half: 50 / 100
    assert mean_iou(pred, truth) == pytest.approx((1 + 1 / 7 + 0 + 0.5) / 4, abs=1e-12)
    with pytest.raises(ValueError):
        mean_iou(pred[:2], truth)


def test_results_xml_round_trip(tmp_path):
    ann = Annotation("0007.jpg", 640, 360, (12, 30, 50, 61), "boat")
    assert parse_xml(to_xml(ann)) == ann
    p = write_result(tmp_path / "res", "boat1/0007", ann)
    assert p == tmp_path / "res" / "boat1" / "0007.xml"
    assert read_results(tmp_path / "res") == {"boat1/0007": ann}
    # the contest's own writer says <length> for the height and orders xmin, xmax, ...
    contest = ("<annotation><filename>0.jpg</filename><size><width>640</width>"
               "<length>360</length></size><object><name>NotCare</name><bndbox>"
               "<xmin>1</xmin><xmax>358</xmax><ymin>0</ymin><ymax>263</ymax>"
               "</bndbox></object></annotation>")
    assert parse_xml(contest) == Annotation("0.jpg", 640, 360, (1, 0, 358, 263), "NotCare")
    two = to_xml(ann).replace("</annotation>", "<object><name>x</name></object></annotation>")
    with pytest.raises(AnnotationError, match="2 <object>"):
        parse_xml(two, "f.xml")
    with pytest.raises(AnnotationError, match="f.xml.*not a number"):
        parse_xml(to_xml(ann).replace("<xmin>12<", "<xmin>abc<"), "f.xml")
    with pytest.raises(ValueError):
        write_result(tmp_path, "../escape", ann)


def test_results_scored_against_the_data_set(synth_root, tmp_path):
    ds = load_dataset(synth_root)
    truth = np.array([s.relative_box for s in ds])
    out = tmp_path / "results"
    write_results(out, ds.samples, truth)
    rep = score_results(out, ds)
    assert rep.n_images == len(ds) and not rep.missing
    assert rep.mean_iou > 0.97             # only pixel rounding separates them
    # pixel boxes: a box shifted by half its width scores 1/3, a missing result 0
    s0 = ds.samples[0]
    x0, y0, x1, y1 = s0.box
    dx = (x1 - x0) // 2 * 2
    shifted = annotation_for(s0, np.array([x0 + dx // 2, y0, x1 + dx // 2, y1]), relative=False)
    write_result(out, s0.key, shifted)
    (out / f"{ds.samples[1].key}.xml").unlink()
    rep = score_results(out, ds)
    assert rep.missing == (ds.samples[1].key,)
    w = x1 - x0
    expect = (w - dx / 2) / (w + dx / 2)
    assert rep.ious[0] == pytest.approx(expect, abs=1e-9)
    assert rep.ious[1] == 0.0
    assert "without a result" in rep.summary()
    exact = mean_iou(np.array([read_xml(out / f"{s.key}.xml").relative_box()
                               for s in ds.samples[2:]]), truth[2:])
    assert rep.mean_iou == pytest.approx((expect + 0 + exact * (len(ds) - 2)) / len(ds))


def test_results_writer_is_board_safe():
    code = ("import sys, pynq_codesign.results_xml; "
            "bad = [m for m in ('torch', 'onnx', 'host_search') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

"""Detection pipeline: the boxes written and drawn are the emulator's; double-buffered
frames come back in order; video in, annotated video out."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pynq_codesign.cli import main as cli  # noqa: E402
from pynq_codesign.driver import Driver  # noqa: E402
from pynq_codesign.fixedpoint import dequantize  # noqa: E402
from pynq_codesign.pipeline import (Detector, Frame, PipelineError, board_timeline,  # noqa: E402
                                    list_images)
from pynq_codesign.platform.sim.board import SimPlatform  # noqa: E402
from pynq_codesign.platform.sim.emulator import run_program  # noqa: E402
from pynq_codesign.prepost import decode, preprocess, quantize_input, to_pixels  # noqa: E402
from pynq_codesign.results_xml import read_xml  # noqa: E402
from tests.helpers import random_package  # noqa: E402


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("pipe") / "pkg", lively=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(4)
    for cat in ("boat1", "car2"):
        (root / cat).mkdir()
        for i in range(2):
            img = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8),
                                   (9, 9), 3)
            cv2.imwrite(str(root / cat / f"{i:04d}.jpg"), img)
    return root


def emulator_box(pkg, image_bgr):
    net = pkg.design.network
    codes = quantize_input(preprocess(image_bgr, net), net, pkg.design.overlay.rounding)
    out = run_program(pkg.program, codes, pkg.design.overlay)
    return decode(dequantize(out, net.formats()[-1][2]), net.decode)


def test_detect_writes_the_emulators_boxes(pkg, images, tmp_path, capsys):
    out = tmp_path / "det"
    assert cli(["detect", str(pkg.root), "--images", str(images), "--out", str(out),
                "--sim"]) == 0
    assert "(simulated" in capsys.readouterr().out
    files = list_images(images)
    assert len(list(out.rglob("*.jpg"))) == len(files)
    checked = 0
    for f in files:
        key = f.relative_to(images).with_suffix("")
        ann = read_xml(out / key.with_suffix(".xml"))
        img = cv2.imread(str(f))
        box, _ = emulator_box(pkg, img)
        want = tuple(int(v) for v in to_pixels(box, img.shape[1], img.shape[0]))
        assert ann.box == want and (ann.width, ann.height) == (640, 360)
        # the box is drawn where the XML says: green along its top edge, not beside it
        drawn = cv2.imread(str(out / key.with_suffix(".jpg"))).astype(np.int64)
        x0, y0, x1, y1 = want
        if x1 - x0 >= 6 and 0 < y0 < 350:
            edge = drawn[y0, x0 + 2:x1 - 2]
            greenness = (edge[:, 1] - (edge[:, 0] + edge[:, 2]) / 2).mean()
            assert greenness > 80
            checked += 1
    assert checked

def test_frames_come_back_in_order_with_the_right_outputs(pkg):
    frames = [Frame(f"g{k}", codes=np.random.default_rng(k).integers(
        -128, 128, size=pkg.golden[0][0].shape)) for k in range(5)]
    want = [run_program(pkg.program, f.codes, pkg.design.overlay) for f in frames]
    with Driver(SimPlatform(0), pkg) as drv:
        dets = Detector(drv).run(frames)
        tl = board_timeline(dets, drv.platform)
    assert [d.key for d in dets] == [f.key for f in frames]
    assert all(np.array_equal(d.codes, w) for d, w in zip(dets, want))
    assert tl.source == "simulated" and tl.wall_s > 0
    assert all(lat > 0 for lat in tl.latencies_s)


def test_video_in_annotated_video_out(pkg, tmp_path):
    src = tmp_path / "in.avi"
    vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 180))
    rng = np.random.default_rng(1)
    for _ in range(3):
        vw.write(cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8),
                                  (5, 5), 2))
    vw.release()
    out = tmp_path / "vid"
    assert cli(["detect", str(pkg.root), "--video", str(src), "--out", str(out),
                "--sim"]) == 0
    cap = cv2.VideoCapture(str(out / "in_detect.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3
    rows = (out / "boxes.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("frame,")
    cap = cv2.VideoCapture(str(src))
    ok, first = cap.read()
    box, conf = emulator_box(pkg, first)
    got = [float(v) for v in rows[1].split(",")[1:5]]
    assert np.allclose(got, box, atol=1e-5)


def test_bad_inputs_are_clear_errors(pkg, tmp_path, capsys):
    with pytest.raises(PipelineError, match="no images"):
        list_images(tmp_path)
    assert cli(["detect", str(pkg.root), "--images", str(tmp_path / "nope"), "--out",
                str(tmp_path / "o"), "--sim"]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    assert cli(["detect", str(pkg.root), "--images", str(tmp_path / "in"), "--out",
                str(tmp_path / "o"), "--sim"]) == 2
    assert "cannot read this image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()            # a failed run leaves no output folder

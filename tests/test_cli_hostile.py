"""Every command with hostile inputs: exit 2, exactly one line on stderr (no traceback),
nothing written to stdout, and no file changed, added or removed anywhere in the world
(the refused output path included: a refusal leaves nothing behind).

The world (one per module): a package with random weights and forged copies of it,
labelled images, a data set, designs with a typo, nested too deeply or too big for their
overlay, files standing where folders are expected, and a non-empty folder.
"""
import json
import shutil

import pytest

from pynq_codesign.cli import main as cli_main
from tests.harden_world import make_images, nofit_design_dict, resign, tree_state
from tests.helpers import random_package

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("hostile")
    pkg = random_package(w / "pkg", lively=True).root
    for name, mutate in (
            ("evil", lambda m: m["files"].update(
                {"../../../../etc/hostname": {"sha256": "0" * 64, "bytes": 1}})),
            ("abs", lambda m: m["files"].update({"/etc/hostname": {"sha256": "0" * 64,
                                                                    "bytes": 1}})),
            ("golden2", lambda m: m.update(golden="two")),
            ("typo", lambda m: m.update(overlayy=None))):
        shutil.copytree(pkg, w / name)
        resign(w / name, mutate)
    (w / "link").mkdir()
    for f in pkg.iterdir():
        (w / "link" / f.name).symlink_to(f, target_is_directory=f.is_dir())
    make_images(w / "imgs", 2)
    (w / "bad_imgs").mkdir()
    (w / "bad_imgs" / "a.jpg").write_bytes(b"")
    (w / "bad_imgs" / "b.jpg").write_text("not an image")
    (w / "empty").mkdir()
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("mine")
    (w / "file").write_text("a file, not a folder")
    (w / "run").mkdir()                        # a folder standing for a run folder
    d = json.loads((pkg / "design.json").read_text())
    d["network"]["bundles"][0]["layers"][0]["strde"] = 2
    (w / "strde.json").write_text(json.dumps(d))
    (w / "nofit.json").write_text(json.dumps(nofit_design_dict()))
    (w / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    return w


def cases():
    """(id, argv with {w} for the world, what the one line must mention)."""
    sim = ["--sim"]
    return [
        # designs and devices
        ("typo-key", ["estimate", "{w}/strde.json"], "did you mean 'stride'"),
        ("deep-json", ["estimate", "{w}/deep.json"], "nested too deeply"),
        ("no-design", ["estimate", "{w}/nope.json"], "dnn-a"),
        ("device-path", ["estimate", "dnn-a", "--device", "../designs/dnn-a"], "unknown device"),
        ("designs-bad-option", ["designs", "--bogus"], "unrecognized"),
        ("no-command", [], "required"),
        # data synth
        ("synth-out-file", ["data", "synth", "--out", "{w}/file", "--n", "2"], "not a folder"),
        ("synth-out-full", ["data", "synth", "--out", "{w}/full", "--n", "2"], "non-empty"),
        ("synth-n-0", ["data", "synth", "--out", "{w}/s", "--n", "0"], "--n"),
        ("synth-seed-neg", ["data", "synth", "--out", "{w}/s", "--seed", "-1"], "--seed"),
        # train
        ("train-seed-neg", ["train", "dnn-a", "--data", "{w}/imgs", "--out", "{w}/r",
                            "--seed", "-1"], "--seed"),
        ("train-lr-nan", ["train", "dnn-a", "--data", "{w}/imgs", "--out", "{w}/r",
                          "--lr", "nan"], "--lr"),
        ("train-nofit", ["train", "{w}/nofit.json", "--data", "{w}/imgs", "--out", "{w}/r"],
         "does not fit"),
        ("train-typo", ["train", "{w}/strde.json", "--data", "{w}/imgs", "--out", "{w}/r"],
         "strde"),
        ("train-out-file", ["train", "dnn-a", "--data", "{w}/imgs", "--out", "{w}/file"],
         "not a folder"),
        # export
        ("export-golden-0", ["export", "{w}/run", "--out", "{w}/p", "--golden", "0"],
         "--golden"),
        ("export-out-file", ["export", "{w}/run", "--out", "{w}/file"], "not a folder"),
        ("export-out-in-run", ["export", "{w}/run", "--out", "{w}/run/pkg"], "inside"),
        ("export-no-run", ["export", "{w}/empty", "--out", "{w}/p"], "run folder"),
        # build-overlay
        ("overlay-in-package", ["build-overlay", "{w}/pkg", "--out", "{w}/pkg/ov"],
         "inside the package"),
        ("overlay-out-full", ["build-overlay", "{w}/pkg", "--out", "{w}/full"], "not empty"),
        ("overlay-out-file", ["build-overlay", "{w}/pkg", "--out", "{w}/file"],
         "not a folder"),
        # packages
        ("manifest-dotdot", ["board", "selftest", "{w}/evil"] + sim, "outside the package"),
        ("manifest-absolute", ["board", "selftest", "{w}/abs"] + sim, "outside the package"),
        ("manifest-golden-str", ["board", "selftest", "{w}/golden2"] + sim, "golden"),
        ("manifest-unknown-key", ["board", "selftest", "{w}/typo"] + sim, "overlayy"),
        ("package-links", ["board", "selftest", "{w}/link"] + sim, "link"),
        ("timeout-inf", ["board", "selftest", "{w}/pkg", "--timeout", "inf"] + sim, "--timeout"),
        ("timeout-nan", ["bench", "{w}/pkg", "--timeout", "nan"] + sim, "--timeout"),
        ("timeout-0", ["detect", "{w}/pkg", "--images", "{w}/imgs", "--out", "{w}/o",
                       "--timeout", "0"] + sim, "--timeout"),
        ("board-seed-neg", ["bench", "{w}/pkg", "--board-seed", "-3"] + sim, "--board-seed"),
        # detect
        ("detect-out-is-input", ["detect", "{w}/pkg", "--images", "{w}/imgs", "--out",
                                 "{w}/imgs"] + sim, "input"),
        ("detect-out-in-input", ["detect", "{w}/pkg", "--images", "{w}/imgs", "--out",
                                 "{w}/imgs/res"] + sim, "input"),
        ("detect-out-file", ["detect", "{w}/pkg", "--images", "{w}/imgs", "--out",
                             "{w}/file"] + sim, "not a folder"),
        ("detect-out-full", ["detect", "{w}/pkg", "--images", "{w}/imgs", "--out",
                             "{w}/full"] + sim, "not an empty folder"),
        ("detect-no-images", ["detect", "{w}/pkg", "--images", "{w}/empty", "--out",
                              "{w}/o"] + sim, "no images"),
        ("detect-all-bad", ["detect", "{w}/pkg", "--images", "{w}/bad_imgs", "--out",
                            "{w}/o"] + sim, "no image could be read"),
        ("detect-no-video", ["detect", "{w}/pkg", "--video", "{w}/none.avi", "--out",
                             "{w}/o"] + sim, "no such video"),
        # bench
        ("bench-frames-0", ["bench", "{w}/pkg", "--frames", "0"] + sim, "--frames"),
        ("bench-warmup-neg", ["bench", "{w}/pkg", "--warmup", "-1"] + sim, "--warmup"),
        ("bench-bad-images", ["bench", "{w}/pkg", "--images", "{w}/bad_imgs", "--frames",
                              "2"] + sim, "no readable image"),
        ("bench-no-images", ["bench", "{w}/pkg", "--images", "{w}/nope"] + sim, "no such"),
        # score
        ("score-missing", ["score", "{w}/nope", "{w}/imgs"], "no such"),
        ("score-same", ["score", "{w}/imgs", "{w}/imgs"], "same folder"),
        ("score-no-results", ["score", "{w}/empty", "{w}/imgs"], "no result"),
    ]


@pytest.mark.parametrize("name,argv,needle", cases(), ids=[c[0] for c in cases()])
def test_hostile_input_is_refused_cleanly(world, capsys, name, argv, needle):
    before = tree_state(world)
    rc = cli_main([a.replace("{w}", str(world)) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (name, rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err + out
    assert needle in lines[0], lines[0]
    assert lines[0].startswith("codesign")
    assert out == ""
    assert tree_state(world) == before, "a refused command changed the world"

"""The cases of the hardening issue, one test (or more) each: bad input never destroys,
fakes or crashes. Refusals of plain hostile options are in test_cli_hostile.py; here are
the cases that need a run, a signal, a umask, another user or a look at the outputs."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from pynq_codesign.cli import main as cli_main  # noqa: E402
from pynq_codesign.package import PackageError, add_files, load_package  # noqa: E402
from tests.harden_world import make_images, resign  # noqa: E402
from tests.helpers import random_package  # noqa: E402

CMD = [sys.executable, "-m", "pynq_codesign.cli"]


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    return random_package(tmp_path_factory.mktemp("hpkg") / "pkg", lively=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run (random data, the real training loop)."""
    from host_search.train import TrainConfig, train
    from tests.test_train import random_data, tiny
    root = tmp_path_factory.mktemp("hrun")
    d = tiny(24, 40)
    train(d, random_data(d, n_train=4, n_val=2), root / "run",
          TrainConfig(epochs=1, qat_epochs=1, batch_size=4, threads=1))
    return root / "run"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- 2. an interrupted overlay update leaves the old version whole ------------------------

def test_interrupted_add_files_keeps_the_old_version(tmp_path, monkeypatch):
    p = random_package(tmp_path / "pkg")
    (tmp_path / "a.bit").write_bytes(b"A" * 100)
    add_files(p.root, {"overlay/x.bit": tmp_path / "a.bit"}, "first overlay")
    (tmp_path / "b.bit").write_bytes(b"B" * 250)
    (tmp_path / "b.hwh").write_bytes(b"<hwh/>")
    real_copy = shutil.copyfile
    calls = []

    def dying_copy(src, dst, *a, **kw):
        calls.append(dst)
        if len(calls) == 2:                    # killed half-way through the new files
            raise KeyboardInterrupt
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copyfile", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        add_files(p.root, {"overlay/x.bit": tmp_path / "b.bit",
                           "overlay/x.hwh": tmp_path / "b.hwh"}, "rebuilt")
    monkeypatch.undo()
    old = load_package(p.root)                  # still loads: the old version, whole
    assert old.version == 2 and (p.root / "overlay/x.bit").read_bytes() == b"A" * 100
    assert not any(q.name.startswith(".pkg.tmp-") for q in tmp_path.iterdir())
    new = add_files(p.root, {"overlay/x.bit": tmp_path / "b.bit"}, "rebuilt")
    assert new.version == 3 and (p.root / "overlay/x.bit").read_bytes() == b"B" * 250


# -- 3. manifest paths never leave the package --------------------------------------------

def test_manifest_path_outside_the_package_is_never_read(pkg, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(pkg.root, evil)
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 7)
    import hashlib
    rel = os.path.relpath(secret, evil)
    resign(evil, lambda m: m["files"].update(
        {rel: {"sha256": hashlib.sha256(b"x" * 7).hexdigest(), "bytes": 7}}))
    with pytest.raises(PackageError, match="outside the package"):
        load_package(evil)
    os.symlink(secret, evil / "linked.bin")
    resign(evil, lambda m: (m["files"].pop(rel), m["files"].update(
        {"linked.bin": {"sha256": hashlib.sha256(b"x" * 7).hexdigest(), "bytes": 7}})))
    with pytest.raises(PackageError, match="symbolic link"):
        load_package(evil)


# -- 4. unknown keys are named, with the close match --------------------------------------

def test_unknown_keys_refused_with_close_match():
    from pynq_codesign.design import DesignError, load_design
    d = load_design("dnn-a").to_dict()
    d["network"]["bundles"][0]["layers"][0]["strde"] = 2
    with pytest.raises(DesignError, match=r"layers\[0\]\.strde: unknown key; did you mean "
                                          "'stride'"):
        load_design(d)
    d = load_design("dnn-a").to_dict()
    d["overlay"]["colour"] = 1
    with pytest.raises(DesignError, match="known keys"):
        load_design(d)


def test_unknown_manifest_file_entry_key(pkg, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(pkg.root, p)
    resign(p, lambda m: m["files"]["params.bin"].update(sha265="x"))
    with pytest.raises(PackageError, match="sha265.*did you mean 'sha256'"):
        load_package(p)


# -- 5. a network that does not fit its overlay is neither trained nor exported -----------

def test_export_refuses_a_network_that_does_not_fit(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    d = json.loads((run / "design.json").read_text())
    d["overlay"]["max_channels"] = 4
    (run / "design.json").write_text(json.dumps(d))
    assert cli_main(["export", str(run), "--out", str(tmp_path / "pkg")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "does not fit" in line and "max_channels 4" in line
    assert not (tmp_path / "pkg").exists()


def test_train_refuses_before_reading_data(tmp_path, capsys):
    from tests.harden_world import nofit_design_dict
    (tmp_path / "d.json").write_text(json.dumps(nofit_design_dict()))
    assert cli_main(["train", str(tmp_path / "d.json"), "--data", str(tmp_path / "none"),
                     "--out", str(tmp_path / "run")]) == 2
    assert "does not fit" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


# -- 6. timeouts are finite and positive ---------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e999"])
def test_timeouts_must_be_finite_and_positive(pkg, value, capsys):
    assert cli_main(["bench", str(pkg.root), "--sim", "--frames", "1",
                     "--timeout", value]) == 2
    assert "--timeout" in one_line(capsys.readouterr().err)


# -- 7. at least one golden vector ----------------------------------------------------------

def test_export_needs_a_golden_vector(trained, tmp_path):
    from host_search.export import ExportError, export_run
    with pytest.raises(ExportError, match="at least 1"):
        export_run(trained, tmp_path / "p", golden=0)
    p = export_run(trained, tmp_path / "p1", golden=1)
    assert len(p.golden) == 1 and p.manifest["info"]["data_split"]["hold_out"]


# -- 8. distinct output names ---------------------------------------------------------------

def test_same_stem_different_suffix_gets_distinct_outputs(pkg, tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(imgs / "p.png"), a)
    cv2.imwrite(str(imgs / "p.bmp"), a[::-1].copy())
    cv2.imwrite(str(imgs / "q.png"), a)
    out = tmp_path / "out"
    assert cli_main(["detect", str(pkg.root), "--images", str(imgs), "--out", str(out),
                     "--sim"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p.bmp.jpg", "p.bmp.xml", "p.png.jpg", "p.png.xml", "q.jpg", "q.xml",
                     "summary.json"]


# -- 9. unwritable, file-in-the-way and unreadable paths: one line ------------------------

def _run_unprivileged(args, cwd):
    """Run codesign where file permissions apply: as root, without the capabilities that
    override them (setpriv), so that root's own 0555 folder is not writable."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions are not enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(prefix + CMD + args, capture_output=True, text=True, timeout=120,
                           cwd=cwd)


@pytest.fixture
def shared_dir():
    d = Path(tempfile.mkdtemp(prefix="harden-"))
    yield d
    for q in [d, *d.rglob("*")]:
        if not q.is_symlink():
            q.chmod(0o755 if q.is_dir() else 0o644)
    shutil.rmtree(d, ignore_errors=True)


def test_unwritable_output_and_unreadable_params_are_one_line(pkg, shared_dir):
    p = shared_dir / "pkg"
    shutil.copytree(pkg.root, p)
    make_images(shared_dir / "imgs", 1)
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    for args in (["data", "synth", "--out", str(locked / "d"), "--n", "2"],
                 ["detect", str(p), "--images", str(shared_dir / "imgs"), "--out",
                  str(locked / "det"), "--sim"],
                 ["build-overlay", str(p), "--out", str(locked / "ov")]):
        r = _run_unprivileged(args, shared_dir)
        assert r.returncode == 2, (args, r.stderr)
        line = one_line(r.stderr)
        assert str(locked) in line and ("writable" in line or "ermission" in line), line
    (p / "params.bin").chmod(0o000)
    r = _run_unprivileged(["board", "selftest", str(p), "--sim"], shared_dir)
    assert r.returncode == 2 and "params.bin" in one_line(r.stderr)


# -- 10. device names, deep JSON, negative seeds, damaged checkpoints and caches ----------

def test_truncated_checkpoint_is_named(trained, tmp_path):
    from host_search.train import TrainConfig, TrainError, train
    from tests.test_train import random_data, tiny
    run = tmp_path / "run"
    run.mkdir()
    ck = (trained / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(ck[: len(ck) // 3])
    d = tiny(24, 40)
    with pytest.raises(TrainError, match="checkpoint.pt: damaged"):
        train(d, random_data(d, n_train=4, n_val=2), run,
              TrainConfig(epochs=1, qat_epochs=1, batch_size=4, threads=1))


def test_junk_cache_is_rebuilt(tmp_path):
    from host_search.data import load_dataset
    from host_search.data.synth import generate
    from host_search.train import _cache_key, _encode
    from tests.test_train import tiny
    generate(tmp_path / "data", 3, 1)
    samples = load_dataset(tmp_path / "data").samples
    d = tiny(24, 40)
    cache = tmp_path / "cache"
    cache.mkdir()
    junk = cache / f"train-{_cache_key(samples, d)}.npz"
    junk.write_bytes(b"PK\x03\x04 not a zip at all")
    x, boxes = _encode(samples, d, cache, "train")
    assert x.shape[0] == len(samples) == boxes.shape[0]
    with np.load(junk) as z:                      # rewritten as a proper cache
        assert np.array_equal(z["x"], x)


def test_golden_count_in_manifest_must_be_an_integer(pkg, tmp_path):
    p = tmp_path / "p"
    shutil.copytree(pkg.root, p)
    resign(p, lambda m: m.update(golden="two"))
    with pytest.raises(PackageError, match="golden: must be a non-negative integer"):
        load_package(p)


# -- 11 + 14. unreadable images skipped and named; no decoder chatter ----------------------

def test_unreadable_images_are_skipped_and_reported_without_decoder_warnings(pkg, tmp_path):
    imgs = tmp_path / "imgs"
    good = make_images(imgs, 2)
    (imgs / "cat1" / "empty.jpg").write_bytes(b"")
    (imgs / "cat1" / "text.jpg").write_text("hello")
    data = good[0].read_bytes()
    (imgs / "cat1" / "cut.jpg").write_bytes(data[: len(data) // 2])
    (imgs / "cat1" / "mid.jpg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    r = subprocess.run(CMD + ["detect", str(pkg.root), "--images", str(imgs), "--out",
                              str(tmp_path / "out"), "--sim"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipped 4 unreadable image(s)" in r.stdout
    for name in ("empty.jpg", "text.jpg", "cut.jpg", "mid.jpg"):
        assert f"{name}: cannot read this image" in r.stderr
    assert "Corrupt JPEG" not in r.stderr.replace("cannot read this image: Corrupt JPEG", "")
    assert "WARN" not in r.stderr
    outs = sorted(p.name for p in (tmp_path / "out" / "cat1").iterdir())
    assert outs == ["0000.jpg", "0000.xml", "0001.jpg", "0001.xml"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["skipped"]) == 4 and summary["frames"] == 2


# -- 12. SIGTERM cleans up; stale temporaries of killed runs go ----------------------------

def test_sigterm_during_synth_leaves_nothing(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.Popen(CMD + ["data", "synth", "--out", str(out), "--n", "400"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".data.tmp-*/*/*.jpg")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".data.tmp-*/*/*.jpg")), "the generator never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []            # no data folder, no hidden temporary


def test_stale_temporary_of_a_killed_run_is_removed(tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".data.tmp-{dead.pid}-abc"
    (stale / "boat1").mkdir(parents=True)
    (stale / "boat1" / "0001.jpg").write_bytes(b"x" * 1000)
    assert cli_main(["data", "synth", "--out", str(tmp_path / "data"), "--n", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# -- 13. result files respect the umask ------------------------------------------------------

def test_outputs_respect_the_umask(pkg, tmp_path):
    make_images(tmp_path / "imgs", 1)
    code = ("import os, sys; os.umask(0o022); from pynq_codesign.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    for args in (["detect", str(pkg.root), "--images", str(tmp_path / "imgs"), "--out",
                  str(tmp_path / "det"), "--sim"],
                 ["data", "synth", "--out", str(tmp_path / "data"), "--n", "2"]):
        r = subprocess.run([sys.executable, "-c", code] + args, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    for root in (tmp_path / "det", tmp_path / "data"):
        for p in [root, *root.rglob("*")]:
            want = 0o755 if p.is_dir() else 0o644
            assert p.stat().st_mode & 0o777 == want, p


# -- 15. build-overlay: quoted commands, its own exit status -------------------------------

def test_build_overlay_without_tools_exit_3_and_quoted_commands(tmp_path, capsys, monkeypatch):
    p = random_package(tmp_path / "my pkg")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli_main(["build-overlay", str(p.root)]) == 3
    out = capsys.readouterr().out
    proj = tmp_path / "my pkg-overlay-build"
    assert (proj / "project.json").is_file()
    assert f"cd '{proj}'" in out and f"codesign build-overlay '{p.root}'" in out
    assert not (p.root / "overlay-build").exists()
    assert cli_main(["build-overlay", str(p.root)]) == 3     # its own project: reused


# -- 16. score: detect's IoU and `codesign score` agree -------------------------------------

def test_detect_scores_labels_and_score_command_agrees(pkg, tmp_path, capsys):
    make_images(tmp_path / "set", 3)
    assert cli_main(["detect", str(pkg.root), "--images", str(tmp_path / "set"), "--out",
                     str(tmp_path / "det"), "--sim"]) == 0
    out = capsys.readouterr().out
    assert "mean IoU on data set set" in out
    summary = json.loads((tmp_path / "det" / "summary.json").read_text())
    assert summary["iou_images"] == 3 and "data set set" in summary["iou_label"]
    assert cli_main(["score", str(tmp_path / "det"), str(tmp_path / "set"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["matched"] == 3 and s["mean_iou"] == pytest.approx(summary["iou"])
    (tmp_path / "det" / "cat1" / "0000.xml").unlink()       # a missing result counts 0
    assert cli_main(["score", str(tmp_path / "det"), str(tmp_path / "set"), "--json"]) == 0
    s2 = json.loads(capsys.readouterr().out)
    assert s2["missing"] == ["cat1/0000"] and s2["images"] == 3
    assert s2["mean_iou"] == pytest.approx(s2["mean_iou_matched"] * 2 / 3)


# -- 17. bench says which images it used ----------------------------------------------------

def test_bench_says_images_repeat(pkg, tmp_path, capsys):
    make_images(tmp_path / "set", 2)
    assert cli_main(["bench", str(pkg.root), "--sim", "--frames", "5", "--warmup", "0",
                     "--images", str(tmp_path / "set"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["images"]["distinct"] == 2 and d["images"]["repeated"]
    assert "each used up to 3 times" in d["images"]["note"]
    assert "unknown whether training saw them" in d["images"]["note"]
    # 20: the per-bundle figures say where they come from, as estimate's do
    assert all(b["latency_source"] == "simulated" for b in d["bundles"])


# -- 18. --version, defaults in --help, exit codes, no markup --------------------------------

def test_version_help_defaults_and_exit_codes(capsys):
    assert cli_main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("codesign ")
    assert cli_main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "``" not in top and "exit status" in top and "  3 " in top
    assert cli_main(["bench", "--help"]) == 0
    h = capsys.readouterr().out
    assert "(default: 50)" in h and "(default: 10.0)" in h


# -- 19. annotated images show the truth too ----------------------------------------------

def test_annotated_image_shows_truth_and_detection(pkg, tmp_path):
    from pynq_codesign.pipeline import TRUTH_COLOUR, draw_box
    img = np.full((360, 640, 3), 255, np.uint8)       # white: a green line alone would fade
    out = draw_box(img.copy(), np.array([0.1, 0.1, 0.3, 0.3]), 0.87,
                   truth=np.array([0.5, 0.5, 0.7, 0.8]))
    y = int(0.5 * 360)
    assert (out[y, 330:440] == TRUTH_COLOUR).all(axis=1).any()
    assert (out[int(0.1 * 360) - 3:int(0.1 * 360) + 3, 100] == 0).all(axis=1).any()  # dark edge

"""The `codesign` command as a user runs it: sub-process, exit codes, one-line errors."""
import json
import subprocess
import sys

CMD = [sys.executable, "-m", "pynq_codesign.cli"]


def run(*args):
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=120)


def test_designs_lists_references_with_published_labels():
    r = run("designs", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [x["name"] for x in d["designs"]] == ["dnn-a", "dnn-b", "dnn-c"]
    pubs = [p for x in d["designs"] for p in x["published"]] + \
        [p for v in d["published"].values() for p in v]
    assert pubs and all(p["source"] == "published" for p in pubs)


def test_bad_design_file_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "network": {"bundles": [{"layers": '
                   '[{"type": "pw", "out_channels": -4}]}]}}')
    r = run("estimate", str(bad), "--json")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "out_channels" in lines[0] and r.stdout == ""


def test_missing_design_names_references(tmp_path):
    r = run("estimate", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "dnn-a" in r.stderr and "Traceback" not in r.stderr


def test_estimate_of_a_reference_shows_published_figures_apart():
    r = run("estimate", "dnn-c")
    assert r.returncode == 0, r.stderr
    est = [ln for ln in r.stdout.splitlines() if "FPS" in ln and "estimated" in ln]
    pub = [ln for ln in r.stdout.splitlines() if "[published]" in ln]
    assert est and pub and not set(est) & set(pub)

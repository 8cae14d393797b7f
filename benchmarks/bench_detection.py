"""Detection quality of a design at a training budget: IoU, where it misses, how fast it trains.

Run: ``.venv/bin/python benchmarks/bench_detection.py [--design dnn-a] [--epochs 13]
[--qat-epochs 2] [--seeds 1,2,3] [--n 240] [--threads 2]`` (DNN-A at the demo's budget:
about 3 minutes per seed on 2 free cores; much longer on a shared machine).

Everything printed is *measured on this host*, on the built-in SYNTHETIC data set (``codesign
data synth``, by default the demo's: 240 images, data seed 1) unless ``--data`` names another
folder: the figures say how well training finds the object, not what a design scores on
the DAC-SDC contest data. The split is fixed by ``--split-seed`` (the demo's, 1) so the
seed-to-seed spread measures training noise only.

Per design and seed (the table's rows), then the mean and the spread (sample standard
deviation over the seeds):

* ``float`` / ``fixed``: validation mean IoU (DAC-SDC score) of the float network after the
  float phase and of the integer-exact fixed-point network after QAT (emulator arithmetic);
* ``IoU per sub-category``: the fixed-point network's, one column per validation
  sub-category;
* ``centre in``: share of validation images whose predicted box centre lies inside the true
  box (does the network find the object at all?);
* ``area``: median predicted/true box area (is the box the right size?);
* ``img/s``, ``GMAC/s``: training images per second of the float and QAT phases (mean over
  their epochs) and the same times the design's forward multiply-adds per image;
* ``image-epochs``: images x epochs actually trained (the budget the search charges);
* ``train s``: seconds its epochs took (from the run's ``metrics.json``, so a run the
  benchmark found finished in ``--work`` keeps the time it was trained in);
* with ``--eval DIR``, a column named after DIR: the fixed-point network's mean IoU on
  every labelled image of DIR (integer-exact), e.g. the demo's 160 held-out images, one
  unseen scene of each of the 16 kinds, where the validation split has 4 scenes.

``--full-stem`` trains each design with its first DW3 + PW1 pair replaced by one full 3x3
convolution (:func:`full_stem`; a diagnosis of what a depthwise first layer costs, not the
reference design).

``--rank K`` adds the fast-vs-full rank check: K designs, per seed, each trained once as
the search trains its candidates (``--fast``: half resolution, ``--rank-fast-epochs``, the
search's fast mini-batch) and once at full resolution with ``--epochs`` / ``--qat-epochs``,
and the Spearman rank correlation of the two fixed-point IoU lists (the search ranks
candidates by their fast IoU); with several ``--seeds`` also that of the means over the
seeds, and the seed-to-seed agreement: the mean Spearman correlation over pairs of seeds of
the full IoUs (how alike two full trainings rank the designs, the ceiling a single fast
training can be held to) and of the fast IoUs. ``--rank-from space`` draws the designs from
the search space as the random search does (bundles, depth, widths, bit widths, input size:
what the search actually ranks); ``references`` (default) takes DNN-A, -C and -B at full,
half and quarter width. It takes K full trainings per seed: long. ``--design ''`` runs the
rank check alone. With ``--eval DIR`` (its older name ``--rank-eval`` works too) every
fast and full network is also scored on DIR and those scores are correlated as well: the
validation split has 4 scenes, which bounds how finely any ranking on it can be measured; a
held-out set with one scene of each kind measures it finer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Figures: measured on this host (see the module "
                                        "docstring for what each column means).")
    ap.add_argument("--design", default="dnn-a",
                    help="design name(s) or JSON file(s), comma-separated (default dnn-a; "
                         "'' with --rank runs the rank check alone)")
    ap.add_argument("--epochs", type=int, default=13, help="float epochs (demo: 13)")
    ap.add_argument("--qat-epochs", type=int, default=2, help="QAT epochs (demo: 2)")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="multiply both epoch counts by this (4 = four times the budget)")
    ap.add_argument("--seeds", default="1,2,3", help="training seeds, comma-separated")
    ap.add_argument("--data", default=None,
                    help="data set folder (default: generate the built-in set, see --n)")
    ap.add_argument("--n", type=int, default=240, help="images of the generated set (demo 240)")
    ap.add_argument("--data-seed", type=int, default=1, help="seed of the generated set")
    ap.add_argument("--split-seed", type=int, default=1,
                    help="seed of the train/validation split (the demo's: 1)")
    ap.add_argument("--split", default=None, choices=("subcategory", "category"),
                    help="hold-out mode of the split (default: the loader's default)")
    ap.add_argument("--val", default=None, metavar="SUBCATS",
                    help="validate on exactly these sub-categories (comma-separated; e.g. "
                         "boat1,drone1,horseride1,person2, the split of the issue's peer)")
    ap.add_argument("--fast", action="store_true", help="train at half resolution (--fast)")
    ap.add_argument("--full-stem", action="store_true",
                    help="diagnosis: replace each design's first DW3 + PW1 pair by one full "
                         "3x3 convolution of the PW1's width (NAME-stem; a network the engine "
                         "runs, not the reference design; docs/training.md, round 6)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--rank", type=int, default=0, metavar="K",
                    help="also measure fast-vs-full rank correlation over K >= 8 designs")
    from host_search.search import SearchConfig
    cand = f"{SearchConfig.cand_epochs}+{SearchConfig.cand_qat_epochs}"
    ap.add_argument("--rank-fast-epochs", default=cand, metavar="F+Q",
                    help=f"float + QAT epochs of the rank check's fast trainings (default "
                         f"{cand}: the search's candidates, SearchConfig.cand_epochs + "
                         "cand_qat_epochs); the full trainings use --epochs/--qat-epochs")
    ap.add_argument("--rank-fast-factor", type=int, default=2, metavar="F",
                    help="the fast trainings' input is F times smaller (default 2, the "
                         "search's --fast; 1: full resolution)")
    ap.add_argument("--rank-fast-batch", type=int, default=None, metavar="B",
                    help="mini-batch of the fast trainings (default: the search's, "
                         "host_search.executors.batch_size_for(images, fast=True))")
    ap.add_argument("--eval", "--rank-eval", dest="eval", type=Path, default=None,
                    metavar="DIR",
                    help="also score every trained network (the table's, and the rank "
                         "check's fast and full ones, whose scores are correlated too) on "
                         "every labelled image in DIR, e.g. a held-out set with more scenes "
                         "than the validation split")
    ap.add_argument("--rank-from", choices=("references", "space"), default="references",
                    help="the rank check's designs: width variants of DNN-A/B/C, or drawn "
                         "from the search space as the random search draws them")
    ap.add_argument("--work", default=None, help="keep run folders here (default: temporary)")
    ap.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return ap.parse_args(argv)


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for x in np.unique(v):                    # ties share their mean rank
            m = v == x
            r[m] = r[m].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def diagnose(pred: np.ndarray, truth: np.ndarray, keys: list[str]) -> dict:
    """IoU per image and per sub-category, centre-inside share, median area ratio."""
    from pynq_codesign.prepost import iou
    per = iou(pred, truth)
    cx, cy = (pred[:, 0] + pred[:, 2]) / 2, (pred[:, 1] + pred[:, 3]) / 2
    inside = (cx >= truth[:, 0]) & (cx < truth[:, 2]) & (cy >= truth[:, 1]) & (cy < truth[:, 3])
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    ratio = area(pred) / np.maximum(area(truth), 1e-12)
    subs: dict[str, list[float]] = {}
    for k, v in zip(keys, per):
        subs.setdefault(k.split("/")[0], []).append(float(v))
    return {"iou": float(per.mean()), "centre_inside": float(inside.mean()),
            "area_ratio_median": float(np.median(ratio)),
            "per_subcategory": {k: float(np.mean(v)) for k, v in sorted(subs.items())}}


def run_one(design, data, out: Path, epochs: int, qat: int, seed: int, threads: int,
            fast: bool, eval_images: tuple | None = None) -> dict:
    """Train once; the diagnosis of the fixed-point network and the speed figures
    (``eval_iou``: its mean IoU on ``eval_images``, ``load_images``' codes and boxes)."""
    from host_search import train as T
    cfg = T.TrainConfig(epochs=epochs, qat_epochs=qat, seed=seed, threads=threads, fast=fast)
    t0 = time.perf_counter()
    res = T.train(design, data, out, cfg)
    wall = time.perf_counter() - t0
    fixed = T.integer_exact_copy(res.model)
    pred = T.predict(fixed, data, data.val_x)
    d = diagnose(pred, data.val_boxes, list(data.info["val_keys"]))
    hist = res.metrics["history"]
    macs = design.network.macs()
    speed = {}
    for ph in ("float", "qat"):
        ips = [h["images_per_s"] for h in hist if h["phase"] == ph]
        speed[ph] = float(np.mean(ips)) if ips else float("nan")
    trained = res.metrics.get("trained") or {
        "image_epochs": int(sum(len(data.train_x) for _ in hist))}
    d.update(float_iou=float(res.float_iou), fixed_iou=float(res.fixed_iou),
             ptq_iou=float(res.metrics["results"]["val_iou_fixed_point_before_qat"]),
             images_per_s=speed, gmacs_per_s={k: v * macs / 1e9 for k, v in speed.items()},
             wall_s=round(wall, 1), train_s=round(sum(h["seconds"] for h in hist), 1),
             image_epochs=trained.get("image_epochs"), seed=seed)
    if eval_images is not None:
        d["eval_iou"] = T.evaluate(fixed, data, *eval_images)
    return d


def _mean_sd(v: list[float]) -> tuple[float, float]:
    return (float(np.mean(v)), float(statistics.stdev(v)) if len(v) > 1 else 0.0)


def print_design(name: str, design, rows: list[dict], info: dict, args, epochs, qat) -> dict:
    subs = sorted(rows[0]["per_subcategory"])
    ev = f" {args.eval.name[:12]:>12}" if args.eval is not None else ""   # the last column
    print(f"\n{name}: {epochs} float + {qat} QAT epochs, "
          f"{'fast (half resolution) ' if args.fast else ''}input "
          f"{design.network.input_height}x{design.network.input_width}, "
          f"{design.network.macs() / 1e6:.1f} M MACs; {info['train_images']} training / "
          f"{info['val_images']} validation images ({info['split']} split, validation: "
          f"{', '.join(info['val_subcategories'])}) [measured, synthetic set]")
    head = (f"{'seed':>5} {'float':>6} {'fixed':>6} {'ptq':>6} " +
            " ".join(f"{s[:10]:>10}" for s in subs) +
            f" {'centre in':>9} {'area':>5} {'img/s f/q':>11} {'GMAC/s f/q':>11} "
            f"{'img-ep':>7} {'train s':>7}")
    width = len(head)                    # where the eval column starts on every line
    line_ev = (lambda line, v: line.ljust(width) + f" {v:>12.3f}") if ev else \
        (lambda line, v: line)
    print(head + ev)
    for r in rows:
        row = (f"{r['seed']:>5} {r['float_iou']:>6.3f} {r['fixed_iou']:>6.3f} "
               f"{r['ptq_iou']:>6.3f} " +
               " ".join(f"{r['per_subcategory'][s]:>10.3f}" for s in subs) +
               f" {100 * r['centre_inside']:>8.1f}% {r['area_ratio_median']:>5.2f} "
               f"{r['images_per_s']['float']:>5.1f}/{r['images_per_s']['qat']:<5.1f} "
               f"{r['gmacs_per_s']['float']:>5.2f}/{r['gmacs_per_s']['qat']:<5.2f} "
               f"{r['image_epochs'] or 0:>7} {r['train_s']:>7.0f}")
        print(line_ev(row, r.get("eval_iou")))
    summary = {}
    for key in ("float_iou", "fixed_iou", "ptq_iou", "centre_inside", "area_ratio_median") + \
            (("eval_iou",) if ev else ()):
        summary[key] = _mean_sd([r[key] for r in rows])
    for ph in ("float", "qat"):
        summary[f"images_per_s_{ph}"] = _mean_sd([r["images_per_s"][ph] for r in rows])
        summary[f"gmacs_per_s_{ph}"] = _mean_sd([r["gmacs_per_s"][ph] for r in rows])
    per = {s: _mean_sd([r["per_subcategory"][s] for r in rows]) for s in subs}
    mean = (f"{'mean':>5} {summary['float_iou'][0]:>6.3f} {summary['fixed_iou'][0]:>6.3f} "
            f"{summary['ptq_iou'][0]:>6.3f} " + " ".join(f"{per[s][0]:>10.3f}" for s in subs) +
            f" {100 * summary['centre_inside'][0]:>8.1f}% "
            f"{summary['area_ratio_median'][0]:>5.2f} "
            f"{summary['images_per_s_float'][0]:>5.1f}/{summary['images_per_s_qat'][0]:<5.1f} "
            f"{summary['gmacs_per_s_float'][0]:>5.2f}/{summary['gmacs_per_s_qat'][0]:<5.2f}")
    sd = (f"{'sd':>5} {summary['float_iou'][1]:>6.3f} {summary['fixed_iou'][1]:>6.3f} "
          f"{summary['ptq_iou'][1]:>6.3f} " + " ".join(f"{per[s][1]:>10.3f}" for s in subs) +
          f" {100 * summary['centre_inside'][1]:>8.1f}%")
    ev_mean, ev_sd = summary.get("eval_iou", (None, None))
    print(line_ev(mean, ev_mean))
    print(line_ev(sd, ev_sd))
    gap = 100 * (summary["fixed_iou"][0] - summary["float_iou"][0])
    print(f"fixed - float: {gap:+.1f} IoU points; seed-to-seed sd of the fixed-point IoU "
          f"{100 * summary['fixed_iou'][1]:.1f} points over {len(rows)} seeds "
          f"({info['val_images']} validation images)")
    print(f"host: {os.cpu_count()} CPUs, {args.threads} torch threads; speeds are wall-clock "
          "on a machine shared with other jobs (load average at the end: "
          f"{os.getloadavg()[0]:.1f}), so they are lower bounds")
    return {"design": name, "epochs": epochs, "qat_epochs": qat, "rows": rows,
            "summary": summary, "per_subcategory": per, "data": {
                k: info[k] for k in ("train_images", "val_images", "split",
                                     "val_subcategories")}}


def full_stem(design):
    """``design`` with its first DW3 + PW1 pair replaced by one full 3x3 convolution (conv3)
    of the PW1's width, formats and activation, named ``NAME-stem``, on its overlay with a
    conv3 stage added and the buffers re-sized. A diagnosis: a depthwise first layer gives the
    PW1's channels one spatial filter per input channel between them, the full convolution
    one per output channel."""
    from pynq_codesign.design import Bundle, Design, Stage, check_fits, size_overlay
    net, ov = design.network, design.overlay
    first = net.bundles[0].layers
    if len(first) < 2 or first[0].type != "dw" or first[1].type != "pw":
        raise SystemExit(f"--full-stem: {design.name} does not start with a DW3 + PW1 pair "
                         f"(its first bundle: {' '.join(lay.type for lay in first)})")
    stem = replace(first[1], type="conv3", stride=first[0].stride)
    net = replace(net, bundles=(Bundle((stem,) + first[2:]),) + net.bundles[1:])
    stages = ov.stages if any(st.kind == "conv3" for st in ov.stages) else \
        (Stage("conv3", 4, 4),) + ov.stages
    ov = size_overlay(net, ov.device, ov.clock_mhz, stages=stages, band_rows=ov.band_rows,
                      rounding=ov.rounding)
    misfit = check_fits(net, ov)
    if misfit:
        raise SystemExit(f"--full-stem: {design.name}-stem does not fit {ov.device}: "
                         f"{misfit[0]}")
    return Design(f"{design.name}-stem", ov, net,
                  f"{design.name} with a full 3x3 stem (a diagnosis, not the reference)")


def rank_designs(k: int) -> list:
    """``k`` design variants around the reference designs (width, depth, bit widths)."""
    from pynq_codesign.design import Design, load_design
    out = []
    for base in ("dnn-a", "dnn-c", "dnn-b"):
        d = load_design(base).to_dict()
        for scale in (1.0, 0.5, 0.25):
            v = json.loads(json.dumps(d))
            for b in v["network"]["bundles"]:
                for lay in b["layers"]:
                    if lay.get("type") == "pw" and lay is not v["network"]["bundles"][-1][
                            "layers"][-1]:
                        lay["out_channels"] = max(8, int(round(lay["out_channels"] * scale
                                                               / 8)) * 8)
            v["name"] = f"{base}-w{int(scale * 100)}"
            try:
                out.append(Design.from_dict(v))
            except Exception as e:                       # noqa: BLE001 - skip a misfit
                print(f"rank check: skipping {v['name']}: {e}", file=sys.stderr)
    return out[:k]


def space_designs(k: int, seed: int = 0, max_macs: float = 300e6) -> list:
    """``k`` designs drawn as the random search draws them (:mod:`host_search.baselines`:
    any bundle, depth, width, growth, down-sampling, bit widths, input size), each on a
    default-sized overlay; draws whose network is empty, misfits its overlay or exceeds
    ``max_macs`` (to bound the benchmark's time) are redrawn."""
    from host_search.baselines import random_knobs
    from host_search.bundles import enumerate_bundles
    from host_search.space import build_network, probe_design, valid_network
    from pynq_codesign.design import check_fits
    templates = {b.template.key: b.template for b in enumerate_bundles() if not b.dropped}
    keys = sorted(templates)
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < k:
        kn = random_knobs(rng, keys)
        if kn.key() in seen:
            continue
        seen.add(kn.key())
        net = build_network(templates[kn.bundle], kn)
        if not valid_network(net) or net.macs() > max_macs:
            continue
        d = probe_design(net, "pynq-z1", f"space-{len(out)}")
        if check_fits(d.network, d.overlay):
            continue
        out.append(d)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch  # noqa: F401  (import cost outside the timings)
    from host_search import train as T
    from host_search.data.synth import generate
    from pynq_codesign.design import load_design
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    epochs = int(round(args.epochs * args.budget))
    qat = int(round(args.qat_epochs * args.budget))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        data_dir = Path(args.data) if args.data else work / f"data-{args.n}-{args.data_seed}"
        if not args.data and not (data_dir / "synth.json").is_file():
            generate(data_dir, args.n, args.data_seed)
        results = {"host": {"cpus": os.cpu_count(), "threads": args.threads},
                   "label": "measured on this host, built-in synthetic data set"
                   if not args.data else f"measured on this host, data set {args.data}",
                   "designs": []}
        if args.eval is not None:
            results["eval"] = str(args.eval)
        load_kw = {} if args.split is None else {"hold_out": args.split}
        if args.val:
            load_kw["val_subcategories"] = T.parse_names(args.val)
        for name in [n.strip() for n in args.design.split(",") if n.strip()]:
            design = load_design(name)
            if args.full_stem:
                design = full_stem(design)
            if args.fast:
                design = T.reduced_design(design)
            data = T.load_data(data_dir, design, seed=args.split_seed,
                               cache_dir=work / "cache", **load_kw)
            ev = None if args.eval is None else \
                T.load_images(args.eval, design, cache_dir=work / "cache")
            rows = []
            for s in seeds:
                out = work / f"run-{design.name}-e{epochs}q{qat}-s{s}"
                rows.append(run_one(design, data, out, epochs, qat, s, args.threads, args.fast,
                                    ev))
                print(f"  [{design.name} seed {s}: fixed IoU {rows[-1]['fixed_iou']:.3f}, "
                      f"{rows[-1]['wall_s']:.0f} s]", file=sys.stderr, flush=True)
            results["designs"].append(print_design(design.name, design, rows, data.info,
                                                   args, epochs, qat))
        if args.rank:
            results["rank"] = print_rank(args, data_dir, work, seeds, load_kw)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_rank(args, data_dir: Path, work: Path, seeds: list[int], load_kw: dict) -> dict:
    """The fast-vs-full rank check, per seed, then on the means over the seeds."""
    from host_search import train as T
    from host_search.executors import batch_size_for
    designs = rank_designs(args.rank) if args.rank_from == "references" else \
        space_designs(args.rank)
    fe, fq = (int(v) for v in args.rank_fast_epochs.split("+"))
    e, q = args.epochs, args.qat_epochs
    ff = args.rank_fast_factor
    out = {"designs": [d.name for d in designs], "seeds": {}}
    ev = args.eval
    ev_tag = "" if ev is None else ev.name
    ev_images: dict[str, tuple] = {}
    if ev is not None:
        out["eval"] = str(ev)
    for seed in seeds:
        print(f"\nfast vs full: {len(designs)} designs ({args.rank_from}); fast: {fe} float + "
              f"{fq} QAT epochs at 1/{ff} of the input size, full: {e} + {q} epochs; seed "
              f"{seed} [measured, synthetic set]")
        extra = "" if ev is None else f" {'fast ' + ev_tag:>12} {'full ' + ev_tag:>12}"
        print(f"{'design':<14} {'M MACs':>7} {'fast IoU':>9} {'full IoU':>9} {'batch f/F':>9}"
              + extra)
        fast, full, ev_fast, ev_full = [], [], [], []
        for d in designs:
            vals, batches, ev_vals = [], [], []
            for is_fast in (True, False):
                dd = T.reduced_design(d, ff) if is_fast else d
                ep, qa = (fe, fq) if is_fast else (e, q)
                data = T.load_data(data_dir, dd, seed=args.split_seed,
                                   cache_dir=work / "cache", **load_kw)
                batch = batch_size_for(len(data.train_x), is_fast)
                if is_fast and args.rank_fast_batch:
                    batch = args.rank_fast_batch
                tag = f"-x{ff}-b{batch}" if is_fast else ""
                res = T.train(dd, data, work / f"rank-{dd.name}{tag}-e{ep}q{qa}-s{seed}",
                              T.TrainConfig(epochs=ep, qat_epochs=qa, seed=seed,
                                            batch_size=batch, threads=args.threads,
                                            fast=is_fast))
                vals.append(res.fixed_iou)
                batches.append(batch)
                if ev is not None:
                    if dd.name not in ev_images:      # once per design, not per seed
                        ev_images[dd.name] = T.load_images(ev, dd, cache_dir=work / "cache")
                    ev_vals.append(T.evaluate(T.integer_exact_copy(res.model), data,
                                              *ev_images[dd.name]))
            fast.append(vals[0])
            full.append(vals[1])
            row = (f"{d.name:<14} {d.network.macs() / 1e6:>7.1f} {vals[0]:>9.3f} "
                   f"{vals[1]:>9.3f} {batches[0]:>4}/{batches[1]:<4}")
            if ev is not None:
                ev_fast.append(ev_vals[0])
                ev_full.append(ev_vals[1])
                row += f" {ev_vals[0]:>12.3f} {ev_vals[1]:>12.3f}"
            print(row, flush=True)
        out["seeds"][seed] = res_seed = {"fast": fast, "full": full}
        if ev is not None:
            res_seed.update(eval_fast=ev_fast, eval_full=ev_full)
        for name, a, b in _rank_pairs(res_seed, ev_tag):
            rho = spearman(a, b)
            res_seed["spearman" if name == "validation" else "spearman_eval"] = rho
            print(f"Spearman rank correlation fast vs full (fixed-point IoU, {name}), seed "
                  f"{seed}: {rho:.2f} (goal >= 0.7)")
    if len(seeds) > 1:
        means = {k: np.mean([v[k] for v in out["seeds"].values()], axis=0)
                 for k in out["seeds"][seeds[0]] if not k.startswith("spearman")}
        for name, a, b in _rank_pairs(means, ev_tag):
            rho = spearman(a, b)
            out["spearman_of_means" if name == "validation" else "spearman_of_means_eval"] = rho
            print(f"Spearman rank correlation of the means over seeds {seeds} ({name}): "
                  f"{rho:.2f} (goal >= 0.7); full IoU of the means: "
                  + ", ".join(f"{n} {v:.3f}" for n, v in zip(out["designs"], b)))
        out["seed_agreement"] = seed_agreement(out["seeds"], ev_tag)
        for name, kinds in out["seed_agreement"].items():
            print(f"seed-to-seed agreement ({name}), mean Spearman over pairs of seeds: "
                  f"full vs full {kinds['full']:.2f}, fast vs fast {kinds['fast']:.2f} (two "
                  "seeds of the full training rank alike no better than this: the ceiling "
                  "of a single fast seed)")
    return out


def seed_agreement(per_seed: dict, ev_tag: str = "") -> dict:
    """How alike different seeds rank the designs: the mean Spearman correlation over every
    pair of seeds, of the full IoUs and of the fast IoUs, on the validation split and on
    the --eval set."""
    from itertools import combinations
    scored = [list(_rank_pairs(r, ev_tag)) for r in per_seed.values()]  # [(name, fast, full)]
    pairs = list(combinations(range(len(scored)), 2))
    out = {}
    for i, (name, _, _) in enumerate(scored[0]):
        out[name] = {kind: float(np.mean([spearman(scored[a][i][k], scored[b][i][k])
                                          for a, b in pairs]))
                     for kind, k in (("full", 2), ("fast", 1))}
    return out


def _rank_pairs(res: dict, ev_tag: str):
    """(name, fast IoUs, full IoUs) on the validation split and, when scored, on --eval."""
    yield "validation", res["fast"], res["full"]
    if "eval_fast" in res:
        yield ev_tag, res["eval_fast"], res["eval_full"]


if __name__ == "__main__":
    sys.exit(main())

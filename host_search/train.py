"""Training: float, then range calibration, then quantisation-aware fine-tuning.

``codesign train DESIGN --data DIR --epochs E --out RUN`` runs three phases on a data set
in the DAC-SDC layout (read with :mod:`host_search.data`, split by sub-category):

1. **float**: the design's network (:mod:`host_search.nn`) with batch norm, ``E`` epochs of
   Adam (learning rate warmed up, then cosine), augmented inputs
   (:mod:`host_search.data.augment`); the phase ends on the moving average of its weights;
2. **calibrate**: fold the batch norms into the weights and biases, run the float network
   over (up to :data:`CALIBRATION_IMAGES`) training images and choose every layer's
   power-of-two scaling (integer bits of its weights and outputs) from the observed
   max-abs (:func:`pynq_codesign.fixedpoint.int_bits_for`); the bit widths stay the
   design's;
3. **qat**: fine-tune the folded network with fake-quantised input, weights, biases and
   feature maps (``--qat-epochs``, default a sixth of ``E``, at least 1), learning rate / 5.

The validation IoU is reported twice, labelled: the float network after phase 1, and the
fixed-point network after phase 3 run in its integer-exact form (float64; bit for bit what
the emulator and the accelerator compute). The score is the DAC-SDC mean IoU
(:func:`host_search.data.mean_iou`).

The run folder holds ``design.json`` (the design with its calibrated per-layer formats,
once calibrated), ``checkpoint.pt`` (written atomically after every epoch), ``metrics.json``
(configuration, per-epoch history, labelled results) and ``cache/`` (the pre-processed,
input-quantised images). Re-running the same command on the same folder resumes after
the last completed epoch; a finished run is reported, not retrained.

Deterministic for a seed on a given machine and thread count: weights are initialised
from ``torch.manual_seed(seed)``, each epoch shuffles with its own generator seeded from
``(seed, phase, epoch)`` (so a resumed run sees the same order), torch runs with
deterministic algorithms and an explicit thread count.

``--fast`` (the search's prototypes): the design is copied at half the input resolution
(:func:`reduced_design`), and the pre-processed tensors are cached.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import pickle
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from pynq_codesign.design import Design, DesignError, load_design, require_fits
from pynq_codesign.errors import CodesignError
from pynq_codesign.fixedpoint import FixedFormat
from pynq_codesign.prepost import decode, quantize_input

from .data.augment import Augment, augment_batch
from .nn import DetectionNet, LossWeights, build_model, calibrate_formats, detection_loss
from .nn.head import fit_anchors

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
DESIGN_FILE = "design.json"
CACHE_DIR = "cache"
#: Training images the range calibration looks at (at most).
CALIBRATION_IMAGES = 64
#: QAT learning rate = lr / this.
QAT_LR_DIVISOR = 5.0
PHASES = ("float", "qat")


class TrainError(CodesignError):
    """A training run that cannot start or continue; the message says what to do."""


# ---------------------------------------------------------------------------
# Configuration and data.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result (a resumed run must have the same)."""

    epochs: int = 10
    qat_epochs: int | None = None      # None: a sixth of epochs, at least 1
    seed: int = 0
    batch_size: int = 8
    lr: float = 2e-3
    fast: bool = False
    val_fraction: float = 0.2
    threads: int | None = None         # torch threads; None: min(4, CPUs)
    flip: bool = True                  # random horizontal flips while training
    loss: LossWeights = LossWeights()
    augment: Augment | None = Augment()  # zoom / shift / colour jitter (None: flips only)
    warmup: float = 0.1                # share of the float phase's steps warming the LR up
    ema: float = 0.95                  # > 0: the float phase ends with an exponential moving
    #                                    average of its weights (this decay per step)
    fit_anchors: bool = True           # anchors fitted to the training boxes' sizes
    centre_range: float | None = 1.5   # the trained decoder's Decode.centre_range (cells;
    #                                    None: the design's)
    hold_out: str = "subcategory"      # split: host_search.data.split_by_subcategory
    val_subcategories: tuple[str, ...] = ()   # non-empty: validate on exactly these

    @property
    def n_qat(self) -> int:
        return self.qat_epochs if self.qat_epochs is not None else max(1, self.epochs // 6)

    @property
    def n_threads(self) -> int:
        return self.threads or max(1, min(4, os.cpu_count() or 1))

    def validate(self) -> None:
        if self.epochs < 0 or self.n_qat < 0 or self.epochs + self.n_qat < 1:
            raise TrainError(f"--epochs {self.epochs} / --qat-epochs {self.qat_epochs}: "
                             "give at least one epoch in all (neither may be negative)")
        if self.batch_size < 1:
            raise TrainError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainError(f"--lr must be a positive number, got {self.lr}")

    def key(self) -> dict:
        """The settings that must match for a run folder to be resumed."""
        d = asdict(self)
        d["qat_epochs"] = self.n_qat
        d.pop("threads")
        return d

    def augmentation(self) -> Augment:
        """The augmentation this configuration asks for (flips alone by default)."""
        if self.augment is not None:
            return replace(self.augment, flip=self.augment.flip if self.flip else 0.0)
        return Augment(zoom=1.0, shift=0.0, flip=0.5 if self.flip else 0.0, colour=0.0)


@dataclass(frozen=True)
class TrainData:
    """Pre-processed, input-quantised images: codes ``[N, C, H, W]`` (int16) of the
    network's input format, boxes ``[N, 4]`` relative (xmin, ymin, xmax, ymax)."""

    train_x: np.ndarray
    train_boxes: np.ndarray
    val_x: np.ndarray
    val_boxes: np.ndarray
    input_format: FixedFormat
    info: dict = field(default_factory=dict)

    def tensor(self, codes: np.ndarray) -> torch.Tensor:
        """Codes to the real-valued input (exact: codes times a power of two), NCHW in the
        channels-last memory layout (about twice as fast on CPUs)."""
        x = torch.from_numpy(codes.astype(np.float32)) * self.input_format.scale
        return x.contiguous(memory_format=torch.channels_last)


def reduced_design(design: Design, factor: int = 2) -> Design:
    """A copy of ``design`` with the input ``factor`` times smaller (fast-train mode).

    Raises :class:`TrainError` if the smaller input leaves an empty feature map.
    """
    net = design.network
    small = replace(net, input_height=max(1, net.input_height // factor),
                    input_width=max(1, net.input_width // factor))
    try:
        return Design.from_dict({**Design(design.name, design.overlay, small).to_dict(),
                                 "name": f"{design.name}-fast"})
    except DesignError as e:
        raise TrainError(f"fast mode cannot shrink {design.name}'s input by {factor}: {e}")


def with_decode(design: Design, **changes) -> Design:
    """A copy of ``design`` whose decoder has ``changes`` (fields of
    :class:`pynq_codesign.design.Decode`: ``anchors``, ``centre_range``)."""
    net = replace(design.network, decode=replace(design.network.decode, **changes))
    return Design(design.name, design.overlay, net, design.description)


def _cache_key(samples, design: Design) -> str:
    net = design.network
    h = hashlib.sha256()
    blob = {"net": [net.input_channels, net.input_height, net.input_width],
            "pre": net.preprocess.to_dict(), "fmt": net.input_format.to_dict(),
            "rounding": design.overlay.rounding, "v": 1}
    h.update(json.dumps(blob, sort_keys=True).encode())
    for s in samples:
        st = s.image.stat()
        h.update(f"{s.image}|{st.st_size}|{st.st_mtime_ns}|{s.box}\n".encode())
    return h.hexdigest()[:16]


def _encode(samples, design: Design, cache_dir: Path | None, what: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``[N, C, H, W]`` and boxes of ``samples`` (from the cache when it has them)."""
    from .data import iter_inputs
    net = design.network
    path = None
    if cache_dir is not None:
        path = cache_dir / f"{what}-{_cache_key(samples, design)}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    return z["x"], z["boxes"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)   # a damaged cache file is rebuilt, not trusted
    xs, boxes = [], []
    for x, box, _ in iter_inputs(samples, net):
        xs.append(quantize_input(x, net, design.overlay.rounding).transpose(2, 0, 1)
                  .astype(np.int16))
        boxes.append(box)
    if not xs:
        raise TrainError(f"no {what} image could be read")
    x_arr, b_arr = np.stack(xs), np.stack(boxes).astype(np.float64)
    if path is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # one temporary name per process: parallel trainers (the search's workers) may
        # encode the same data at once; the last rename wins, each with a whole file
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, x=x_arr, boxes=b_arr)
        os.replace(tmp, path)
    return x_arr, b_arr


def load_data(data_dir: str | Path, design: Design, seed: int = 0, val_fraction: float = 0.2,
              cache_dir: str | Path | None = None, hold_out: str = "subcategory",
              val_subcategories: Sequence[str] = ()) -> TrainData:
    """Load, split (:func:`host_search.data.split_by_subcategory`: sub-categories held out,
    every category keeping training examples; ``hold_out="category"`` holds out whole
    categories; ``val_subcategories`` names them), pre-process
    (:func:`pynq_codesign.prepost.preprocess`) and quantise the input of a data set folder,
    through a cache folder when given."""
    from .data import load_dataset, split_by_subcategory
    ds = load_dataset(data_dir)
    split = split_by_subcategory(ds, val_fraction=val_fraction, seed=seed, hold_out=hold_out,
                                 val_subcategories=val_subcategories)
    cache = Path(cache_dir) if cache_dir is not None else None
    tx, tb = _encode(split.train.samples, design, cache, "train")
    vx, vb = _encode(split.val.samples, design, cache, "val")
    info = {"data": str(Path(data_dir).resolve()), "split": split.mode,
            "train_images": int(len(tx)), "val_images": int(len(vx)),
            "val_subcategories": list(split.val_subcategories), "hold_out": hold_out,
            "val_keys": [s.key for s in split.val.samples],
            "skipped": len(ds.skipped)}
    return TrainData(tx, tb, vx, vb, design.network.input_format, info)


def load_images(data_dir: str | Path, design: Design, cache_dir: str | Path | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled image of a data set folder, unsplit, as ``design``'s input codes and
    boxes (e.g. a held-out set to score a trained model on with :func:`evaluate`)."""
    from .data import load_dataset
    ds = load_dataset(data_dir)
    return _encode(ds.samples, design, Path(cache_dir) if cache_dir is not None else None,
                   "eval")


# ---------------------------------------------------------------------------
# Evaluation.
# ---------------------------------------------------------------------------

@torch.no_grad()
def predict(model: DetectionNet, data: TrainData, codes: np.ndarray,
            batch_size: int = 16) -> np.ndarray:
    """Decoded boxes ``[N, 4]`` (relative) with :func:`pynq_codesign.prepost.decode`."""
    model.eval()
    dtype = next(model.parameters()).dtype
    boxes = []
    for i in range(0, len(codes), batch_size):
        x = data.tensor(codes[i:i + batch_size]).to(dtype)
        out = model(x).double().permute(0, 2, 3, 1).numpy()
        boxes += [decode(o, model.network.decode)[0] for o in out]
    return np.stack(boxes) if boxes else np.zeros((0, 4))


def evaluate(model: DetectionNet, data: TrainData, codes: np.ndarray, truth: np.ndarray,
             batch_size: int = 16) -> float:
    """Mean IoU (the DAC-SDC score) of ``model`` on ``codes`` against ``truth``."""
    from .data import mean_iou
    if len(codes) == 0:
        return float("nan")
    return mean_iou(predict(model, data, codes, batch_size), truth)


def integer_exact_copy(model: DetectionNet) -> DetectionNet:
    """The quantised model in float64: bit for bit the emulator's arithmetic."""
    import copy
    m = copy.deepcopy(model).double()
    m.quantized = True
    return m


# ---------------------------------------------------------------------------
# The training loop.
# ---------------------------------------------------------------------------

@dataclass
class TrainResult:
    run_dir: Path
    design: Design                  # with the calibrated per-layer formats
    model: DetectionNet             # folded, quantised (float32 fake-quant)
    metrics: dict

    @property
    def float_iou(self) -> float:
        return self.metrics["results"]["val_iou_float"]

    @property
    def fixed_iou(self) -> float:
        return self.metrics["results"]["val_iou_fixed_point"]

    @property
    def image_epochs(self) -> int:
        """Images x epochs trained (float + QAT), at the input resolution trained."""
        return self.metrics["trained"]["image_epochs"]


# glibc's mallopt parameters (malloc.h) and their defaults.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


@contextlib.contextmanager
def _keep_freed_memory():
    """While training, glibc keeps freed memory for reuse instead of returning it.

    Every feature map of a training step is larger than glibc's mmap threshold, so by
    default each one is a fresh ``mmap`` that the kernel zero-fills page by page and that
    ``free`` hands back at once: on DNN-A at 3x160x360 the process spent 40% of its time in
    the kernel, and a float step ran 2.7x slower than with the memory kept (10.8 against
    28.7 images/s, measured with ``benchmarks/bench_training.py --only-throughput``).
    Allocation does not change a result. Outside glibc (musl, macOS) this does nothing.
    The defaults are restored afterwards and the kept memory is returned.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    set_ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    try:
        yield
    finally:
        if set_ok:
            for param, value in _GLIBC_DEFAULTS.items():
                mallopt(param, value)
            trim(0)


@contextlib.contextmanager
def _torch_settings(threads: int):
    """Deterministic algorithms, a thread count and the allocator's settings for the run;
    restored afterwards."""
    import torch.utils.deterministic as tud
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_fill = tud.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Filling every new tensor with NaN (a debugging aid of deterministic mode) took 44% of
    # a training step (profiled); results do not depend on it.
    tud.fill_uninitialized_memory = False
    try:
        with _keep_freed_memory():
            yield
    finally:
        tud.fill_uninitialized_memory = old_fill
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _batches(order: np.ndarray, size: int) -> list[np.ndarray]:
    """An epoch's mini-batches of ``size`` in ``order``. A last batch of one image joins the
    one before: batch norm cannot train on one value per channel (a network whose map
    reaches 1x1, at small batches, failed on an odd number of training images)."""
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    if size > 1 and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def _epoch_generator(seed: int, phase: str, epoch: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + PHASES.index(phase) * 10_007 + epoch)
    return g


def _make_optimizer(model: DetectionNet, cfg: TrainConfig, phase: str, n_epochs: int,
                    steps_per_epoch: int):
    lr = cfg.lr if phase == "float" else cfg.lr / QAT_LR_DIVISOR
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = max(1, n_epochs * steps_per_epoch)
    warm = int(round(cfg.warmup * total)) if phase == "float" else 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _WarmCosine(warm, total, 0.05))
    return opt, sched


@dataclass(frozen=True)
class _WarmCosine:
    """LR factor per step: linear warm-up over ``warm`` steps, then cosine to ``floor``."""

    warm: int
    total: int
    floor: float

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / self.warm
        t = min(1.0, (step - self.warm) / max(1, self.total - self.warm))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t))


class _Ema:
    """Exponential moving average of a model's weights and batch-norm statistics over the
    float phase's steps (decay ramped up over the first steps, as the first weights are
    poor); :meth:`state` goes into the checkpoint so that a resumed run averages on."""

    def __init__(self, model: DetectionNet, decay: float, state: dict | None = None):
        self.decay = decay
        self.updates = 0 if state is None else state["updates"]
        live = model.state_dict()
        self.shadow = ({k: v.detach().clone() for k, v in live.items()}
                       if state is None else state["shadow"])
        # (average, live tensor) pairs, looked up once: the live tensors stay the same
        # objects for the whole float phase
        self._pairs = [(self.shadow[k], v) for k, v in live.items()]

    @torch.no_grad()
    def update(self) -> None:
        """One step's averaging (of the model given at construction)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for avg, v in self._pairs:
            if v.dtype.is_floating_point:
                avg.mul_(d).add_(v, alpha=1.0 - d)
            else:
                avg.copy_(v)

    def copy_to(self, model: DetectionNet) -> None:
        model.load_state_dict(self.shadow)

    def state(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}


def _train_epoch(model: DetectionNet, data: TrainData, cfg: TrainConfig, opt, sched,
                 phase: str, epoch: int, n_epochs: int, progress: bool,
                 ema: _Ema | None = None) -> dict:
    from .data import mean_iou
    from .nn import best_boxes
    model.train()
    g = _epoch_generator(cfg.seed, phase, epoch)
    n = len(data.train_x)
    order = torch.randperm(n, generator=g).numpy()
    aug = cfg.augmentation()
    fmt = data.input_format
    limits = (fmt.real_min(), fmt.real_max())
    batches = _batches(order, cfg.batch_size)
    total, ious, seen = 0.0, [], 0
    bar = _progress(batches, f"{phase} {epoch + 1}/{n_epochs}", progress)
    for idx in bar:
        x = data.tensor(data.train_x[idx])
        bt = torch.from_numpy(data.train_boxes[idx]).float()
        if aug.enabled:
            x, bt = augment_batch(x, bt, aug, g, limits)
        boxes = bt.double().numpy()
        out = model(x)
        loss, _ = detection_loss(out, bt, model.network.decode, cfg.loss)
        if not torch.isfinite(loss):
            raise TrainError(f"the loss became {float(loss)} in {phase} epoch {epoch + 1}; "
                             f"lower --lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update()
        pred, _ = best_boxes(out.detach().double(), model.network.decode)
        ious.append(mean_iou(pred.numpy(), boxes) * len(idx))
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / seen:.3f}", iou=f"{sum(ious) / seen:.3f}")
    return {"loss": total / max(1, seen), "train_iou": sum(ious) / max(1, seen)}


def _progress(it: Sequence, desc: str, enabled: bool):
    """A live bar on a terminal; in a log (not a TTY) the per-epoch summary lines suffice."""
    if not enabled or not sys.stderr.isatty():
        return it
    try:
        from tqdm import tqdm
    except ImportError:     # pragma: no cover - tqdm is in the [host] extra
        return it
    return tqdm(it, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)


def _calibrate(model: DetectionNet, data: TrainData, cfg: TrainConfig) -> Design:
    model.eval()
    model.fold_batch_norm()
    n = min(len(data.train_x), CALIBRATION_IMAGES)
    batches = [data.tensor(data.train_x[i:i + cfg.batch_size]) for i in range(0, n,
                                                                                 cfg.batch_size)]
    ranges = model.observe_ranges(batches)
    design = model.design
    return Design(design.name, design.overlay, calibrate_formats(design.network, ranges),
                  design.description)


def train(design: Design, data: TrainData, out: str | Path, cfg: TrainConfig = TrainConfig(),
          progress: bool = False,
          on_epoch_end: Callable[[str, int, dict], None] | None = None) -> TrainResult:
    """Train ``design`` on ``data`` into the run folder ``out`` (resuming what is there).

    ``on_epoch_end(phase, epoch, record)`` is called after each epoch's checkpoint is on
    disk (an exception raised there stops the run as a kill would).
    """
    cfg.validate()
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    ck_path = run / CHECKPOINT
    if cfg.centre_range is not None:
        design = with_decode(design, centre_range=float(cfg.centre_range))
    if cfg.fit_anchors:
        design = with_decode(design, anchors=fit_anchors(data.train_boxes,
                                                         len(design.network.decode.anchors)))
    key = {"config": cfg.key(), "design": design.to_dict(),
           "data": {k: data.info.get(k) for k in ("data", "train_images", "val_images",
                                                 "val_keys")}}
    with _torch_settings(cfg.n_threads):
        state = None
        if ck_path.is_file():
            try:
                state = torch.load(ck_path, weights_only=False)
            except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
                raise TrainError(f"{ck_path}: damaged, cannot resume ({str(e)[:80]}); delete "
                                 "it to train from the start, or choose a new --out") from None
            if state.get("key") != key:
                raise TrainError(f"{run} holds a run with other settings (design, data or "
                                 "options differ); choose a new --out, or delete that folder "
                                 "to start over")
        torch.manual_seed(cfg.seed)
        model = build_model(design)
        history: list[dict] = []
        phase, done = "float", 0
        float_iou = ptq_iou = None
        if state is not None:
            phase, done = state["phase"], state["epochs_done"]
            history, float_iou = state["history"], state["float_iou"]
            ptq_iou = state.get("ptq_iou")
            if progress:
                finished = phase == "qat" and done >= cfg.n_qat
                print(f"{run}: this run is already complete; reporting its results" if finished
                      else f"{run}: resuming after {phase} epoch {done}", file=sys.stderr)
            if phase == "qat":
                model.fold_batch_norm()
                model.set_design(Design.from_dict(state["design"]))
            model.load_state_dict(state["model"])
        model.to(memory_format=torch.channels_last)
        steps = len(_batches(np.arange(len(data.train_x)), cfg.batch_size))
        metrics = {"design": design.name, "config": cfg.key(), "data": data.info,
                   "fast": cfg.fast, "input": [design.network.input_height,
                                               design.network.input_width],
                   "threads": cfg.n_threads, "history": history}
        t0 = time.perf_counter()
        for ph, n_ep in (("float", cfg.epochs), ("qat", cfg.n_qat)):
            if PHASES.index(ph) < PHASES.index(phase):
                continue
            if ph == "qat" and phase == "float":
                if float_iou is None:
                    float_iou = evaluate(model, data, data.val_x, data.val_boxes)
                calibrated = _calibrate(model, data, cfg)
                model.set_design(calibrated)
                model.to(memory_format=torch.channels_last)
                (run / DESIGN_FILE).write_text(calibrated.to_json())
                if n_ep:
                    ptq_iou = evaluate(integer_exact_copy(model), data, data.val_x,
                                       data.val_boxes)
                phase, done, state = "qat", 0, None
            model.quantized = ph == "qat"
            opt, sched = _make_optimizer(model, cfg, ph, n_ep, steps)
            if state is not None and state["phase"] == ph and state.get("optimizer"):
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
            if ph == "float" and done == 0:
                (run / DESIGN_FILE).write_text(design.to_json())
            ema = None
            if ph == "float" and cfg.ema > 0:
                ema = _Ema(model, cfg.ema, state.get("ema") if state is not None and
                           state["phase"] == ph else None)
            for ep in range(done, n_ep):
                t_ep = time.perf_counter()
                rec = _train_epoch(model, data, cfg, opt, sched, ph, ep, n_ep, progress, ema)
                rec.update(phase=ph, epoch=ep + 1,
                           seconds=round(time.perf_counter() - t_ep, 3),
                           images_per_s=round(len(data.train_x) / max(
                               1e-9, time.perf_counter() - t_ep), 2))
                if ph == "float" and ep == n_ep - 1:
                    if ema is not None:
                        ema.copy_to(model)
                    float_iou = evaluate(model, data, data.val_x, data.val_boxes)
                    rec["val_iou_float"] = float_iou
                history.append(rec)
                if progress:
                    print(f"{ph} epoch {ep + 1}/{n_ep}: loss {rec['loss']:.4f}, train IoU "
                          f"{rec['train_iou']:.3f} ({rec['images_per_s']:.1f} images/s)",
                          file=sys.stderr)
                _save_checkpoint(ck_path, {
                    "key": key, "phase": ph, "epochs_done": ep + 1, "history": history,
                    "float_iou": float_iou, "ptq_iou": ptq_iou,
                    "design": model.design.to_dict(),
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "ema": None if ema is None else ema.state()})
                metrics["history"] = history
                _atomic_json(run / METRICS, metrics)
                if on_epoch_end is not None:
                    on_epoch_end(ph, ep + 1, rec)
            done, state = 0, None
            phase = ph
        if not model.folded:
            raise TrainError("internal: the run ended before calibration")
        model.quantized = True
        if cfg.n_qat == 0:          # no QAT epoch wrote the calibrated model: write it now
            _save_checkpoint(ck_path, {
                "key": key, "phase": "qat", "epochs_done": 0, "history": history,
                "float_iou": float_iou, "ptq_iou": ptq_iou,
                "design": model.design.to_dict(),
                "model": model.state_dict(), "optimizer": None, "scheduler": None})
        if float_iou is None:
            float_iou = float("nan")
        fixed_iou = evaluate(integer_exact_copy(model), data, data.val_x, data.val_boxes)
        metrics["history"] = history
        n_float = sum(1 for h in history if h["phase"] == "float")
        n_qat = sum(1 for h in history if h["phase"] == "qat")
        metrics["trained"] = {
            "images": int(len(data.train_x)), "float_epochs": n_float, "qat_epochs": n_qat,
            "image_epochs": int(len(data.train_x) * (n_float + n_qat)),
            "input": [design.network.input_height, design.network.input_width],
            "anchors": [list(a) for a in model.network.decode.anchors]}
        metrics["results"] = {
            "val_iou_float": float_iou,
            "val_iou_fixed_point": fixed_iou,
            "val_iou_fixed_point_before_qat": ptq_iou if ptq_iou is not None else fixed_iou,
            "labels": {
                "val_iou_float": "validation mean IoU of the float network after the float "
                                 "phase (torch, batch norm unfolded)",
                "val_iou_fixed_point": "validation mean IoU of the fixed-point network after "
                                       "QAT, integer-exact (float64 = emulator arithmetic)",
                "val_iou_fixed_point_before_qat": "the same right after calibration, before "
                                                  "QAT (post-training quantisation)"},
            "data_note": "synthetic data set (codesign data synth)" if _is_synth(data) else
                         "data set: " + str(data.info.get("data")),
            "train_seconds_this_session": round(time.perf_counter() - t0, 2),
        }
        metrics["formats"] = [
            {"layer": i, "type": lay.type,
             "weight": None if wf is None else str(wf), "out": str(fo)}
            for i, (lay, (_, wf, fo)) in enumerate(zip(model.network.layers,
                                                        model.network.formats()))]
        _atomic_json(run / METRICS, metrics)
        (run / DESIGN_FILE).write_text(model.design.to_json())
    return TrainResult(run, model.design, model, metrics)


def _is_synth(data: TrainData) -> bool:
    from .data.synth import MARKER
    d = data.info.get("data")
    return bool(d) and (Path(d) / MARKER).is_file()


# ---------------------------------------------------------------------------
# Reading a finished run (export uses this).
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    root: Path
    design: Design
    model: DetectionNet            # folded, quantized = True, float32
    metrics: dict


def load_run(path: str | Path) -> Run:
    """A finished run folder: its calibrated design and its trained, folded model."""
    root = Path(path)
    ck, dj, mj = root / CHECKPOINT, root / DESIGN_FILE, root / METRICS
    for p in (ck, dj, mj):
        if not p.is_file():
            raise TrainError(f"{p}: missing; is {root} a run folder written by "
                             "`codesign train`?")
    try:
        metrics = json.loads(mj.read_text())
        design = load_design(dj)
        state = torch.load(ck, weights_only=False)
    except (json.JSONDecodeError, OSError, RuntimeError, EOFError, ValueError,
            pickle.UnpicklingError) as e:
        raise TrainError(f"{root}: cannot read the run ({e}); train again into a new --out")
    if "results" not in metrics or state.get("phase") != "qat":
        raise TrainError(f"{root}: the run has not finished; re-run the same `codesign train` "
                         "command to complete it")
    model = build_model(design)
    model.fold_batch_norm()
    model.load_state_dict(state["model"])
    model.quantized = True
    model.eval()
    return Run(root, design, model, metrics)


# ---------------------------------------------------------------------------
# The command.
# ---------------------------------------------------------------------------

def main(args: argparse.Namespace) -> int:
    """``codesign train DESIGN --data DIR --epochs E --out RUN``."""
    design = load_design(args.design)
    require_fits(design, "train")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise TrainError(f"--out {args.out} exists and is not a folder; choose a run folder")
    cfg = TrainConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, seed=args.seed,
                      batch_size=args.batch_size, lr=args.lr, fast=args.fast,
                      hold_out=getattr(args, "hold_out", "subcategory"),
                      val_subcategories=parse_names(getattr(args, "val", None)))
    cfg.validate()
    if cfg.fast:
        design = reduced_design(design)
    run = Path(args.out)
    data = load_data(args.data, design, seed=cfg.seed, val_fraction=cfg.val_fraction,
                     cache_dir=run / CACHE_DIR, hold_out=cfg.hold_out,
                     val_subcategories=cfg.val_subcategories)
    print(f"training {design.name} ({design.network.input_height}x"
          f"{design.network.input_width} input) on {data.info['train_images']} images, "
          f"validating on {data.info['val_images']} ({data.info['split']} split); "
          f"{cfg.epochs} float + {cfg.n_qat} QAT epochs, {cfg.n_threads} threads",
          file=sys.stderr)
    try:
        res = train(design, data, run, cfg, progress=True)
    except KeyboardInterrupt:
        print(f"interrupted: the last completed epoch is saved in {run / CHECKPOINT}; run the "
              "same command again to resume", file=sys.stderr)
        raise
    _report(res.metrics, run)
    return 0


def parse_names(csv: str | None) -> tuple[str, ...]:
    """``"boat1, person2"`` -> ``("boat1", "person2")``; ``None`` -> ``()``."""
    return tuple(n.strip() for n in (csv or "").split(",") if n.strip())


def _report(metrics: dict, run: Path) -> None:
    r = metrics["results"]
    note = r.get("data_note", "")
    untrained = (metrics.get("config") or {}).get("epochs") == 0
    flt = "n/a (no float epochs: the float network was never trained)" if untrained else \
        f"{r['val_iou_float']:.3f}"
    print(f"validation mean IoU ({note}): float {flt}, fixed point "
          f"{r['val_iou_fixed_point']:.3f} (integer-exact, as the accelerator computes)")
    print(f"run folder: {run} (design.json with calibrated formats, checkpoint.pt, "
          "metrics.json)")

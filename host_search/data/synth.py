"""``codesign data synth``: a built-in UAV-like data set in the DAC-SDC layout.

The contest's data cannot be shipped, so the tools carry a stand-in that goes through the
same loader: 640x360 JPEG frames, one XML per frame, one small object per frame, grouped
in sub-category folders (``car1/``, ``boat1/``, ``person1/`` ...) like the contest's.

Everything comes from images bundled in the scikit-image wheel (offline):

* backgrounds: the grass, gravel and brick textures, mirror-tiled, scaled, rotated and
  coloured to look like fields, gravel, rooftops, water and roads seen from above, or
  blurred crops of the coffee, astronaut, rocket, chelsea and camera photos;
* objects: drawn shapes (cars, trucks, boats, people, groups, drones, whales), the
  skimage horse silhouette, and cut-outs from the photos; scale, rotation, colour,
  blur and a soft shadow vary per frame.

A sub-category is one "video": a fixed background style and object kind, the camera
drifting and the object moving smoothly from frame to frame, so that a split by
sub-category tests generalisation to unseen scenes as the contest does. Object sizes
follow a log-normal law with a median near 1% of the frame (most under 2%, few above 5%),
like the contest's small objects. Same seed, same bytes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from pynq_codesign.errors import CodesignError
from pynq_codesign.fsutil import staged_dir
from pynq_codesign.results_xml import Annotation, to_xml
from pynq_codesign.score import SYNTH_MARKER

WIDTH, HEIGHT = 640, 360
JPEG_QUALITY = 90
GENERATOR_VERSION = 1
MARKER = SYNTH_MARKER                 # written at the root; marks a folder as ours
SUPERSAMPLE = 4                       # objects are drawn 4x larger, then area-averaged
LOG_AREA_MEDIAN, LOG_AREA_SPREAD = -1.9, 0.28   # log10 of the box / frame area
AREA_MIN, AREA_MAX = 0.0008, 0.07


class SynthError(CodesignError):
    """Bad arguments or an output folder the generator must not overwrite."""


@dataclass(frozen=True)
class SubcategorySpec:
    """One sub-category: its folder name, object kind and background style."""

    name: str
    kind: str
    background: str


# Interleaved so that the first few sub-categories already mix kinds and backgrounds.
SPECS: tuple[SubcategorySpec, ...] = (
    SubcategorySpec("car1", "car", "road"),
    SubcategorySpec("boat1", "boat", "water"),
    SubcategorySpec("person1", "person", "gravel"),
    SubcategorySpec("group1", "group", "grass"),
    SubcategorySpec("truck1", "truck", "road"),
    SubcategorySpec("drone1", "drone", "photo:coffee"),
    SubcategorySpec("riding1", "cutout:astronaut", "grass"),
    SubcategorySpec("whale1", "whale", "water"),
    SubcategorySpec("car2", "car", "brick"),
    SubcategorySpec("boat2", "boat", "photo:rocket"),
    SubcategorySpec("person2", "person", "brick"),
    SubcategorySpec("horseride1", "horse", "grass"),
    SubcategorySpec("building1", "cutout:camera", "gravel"),
    SubcategorySpec("animal1", "cutout:chelsea", "photo:astronaut"),
    SubcategorySpec("car3", "car", "photo:chelsea"),
    SubcategorySpec("group2", "group", "gravel"),
)

# Background palettes (RGB, 0..1): dark and light ends of the texture's grey ramp.
_PALETTES = {
    "grass": ((0.10, 0.22, 0.07), (0.47, 0.66, 0.28)),
    "gravel": ((0.26, 0.25, 0.23), (0.75, 0.71, 0.65)),
    "brick": ((0.33, 0.15, 0.11), (0.80, 0.49, 0.36)),
    "water": ((0.06, 0.18, 0.30), (0.30, 0.47, 0.58)),
    "road": ((0.10, 0.22, 0.07), (0.47, 0.66, 0.28)),
}
_TEXTURE_OF = {"grass": "grass", "gravel": "gravel", "brick": "brick", "water": "gravel",
               "road": "grass"}
# Object shape aspect (length over width) before rotation.
_ASPECT = {"car": 2.1, "truck": 3.0, "boat": 2.8, "person": 0.45, "group": 1.3,
           "drone": 1.0, "whale": 3.2}


# ---------------------------------------------------------------------------
# Sources: the bundled images, loaded once per run.
# ---------------------------------------------------------------------------

@dataclass
class Sources:
    """scikit-image's bundled images, loaded on first use (one instance per run)."""

    _cache: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A texture as float32 grey ``[H, W]`` or a photo as float32 RGB ``[H, W, 3]``."""
        if name not in self._cache:
            from skimage import data  # noqa: PLC0415  (host only)

            img = np.asarray(getattr(data, name)())
            if img.dtype == bool:
                arr = img.astype(np.float32)
            else:
                arr = img.astype(np.float32) / 255.0
            if name == "camera":
                arr = np.repeat(arr[..., None], 3, axis=2)
            self._cache[name] = arr
        return self._cache[name]


# ---------------------------------------------------------------------------
# Per sub-category and per frame parameters.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scene:
    """What stays fixed within a sub-category (drawn from the seed and its index)."""

    spec: SubcategorySpec
    tex_scale: float
    tex_turns: int
    tint: np.ndarray            # per-channel gain on the palette
    cam_origin: tuple[float, float]
    cam_velocity: tuple[float, float]
    obj_colour: np.ndarray      # RGB 0..1
    obj_colour2: np.ndarray
    log_area: float
    aspect_jitter: float
    start: tuple[float, float]  # object centre, relative
    velocity: tuple[float, float]
    road_angle: float
    road_offset: float
    crop: tuple[float, float, float]   # photo crops: relative y, x, size


def _scene(spec: SubcategorySpec, rng: np.random.Generator) -> _Scene:
    speed = rng.uniform(0.004, 0.02)
    heading = rng.uniform(0, 2 * math.pi)
    return _Scene(
        spec=spec,
        tex_scale=float(rng.uniform(0.7, 1.5)),
        tex_turns=int(rng.integers(0, 4)),
        tint=rng.uniform(0.85, 1.15, size=3),
        cam_origin=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
        cam_velocity=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))),
        obj_colour=rng.uniform(0.05, 0.95, size=3),
        obj_colour2=rng.uniform(0.3, 1.0, size=3),
        log_area=float(rng.normal(LOG_AREA_MEDIAN, LOG_AREA_SPREAD)),
        aspect_jitter=float(rng.uniform(0.85, 1.15)),
        start=(float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))),
        velocity=(speed * math.cos(heading), speed * math.sin(heading) * WIDTH / HEIGHT),
        road_angle=float(rng.uniform(-35, 35)),
        road_offset=float(rng.uniform(-0.2, 0.2)),
        crop=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0.3, 0.6))),
    )


def _bounce(u: float) -> float:
    """Fold a coordinate into 0..1 as a ball bouncing between two walls."""
    u = u % 2.0
    return 2.0 - u if u > 1.0 else u


# ---------------------------------------------------------------------------
# Backgrounds.
# ---------------------------------------------------------------------------

def _mirror_tile(tex: np.ndarray, reps: int) -> np.ndarray:
    pair = np.concatenate([tex, tex[::-1]], axis=0)
    pair = np.concatenate([pair, pair[:, ::-1]], axis=1)
    return np.tile(pair, (reps, reps) + (1,) * (tex.ndim - 2))


def _texture_bg(sc: _Scene, frame: int, src: Sources) -> np.ndarray:

    style = sc.spec.background
    tex = np.rot90(src.get(_TEXTURE_OF[style]), sc.tex_turns)
    scale = sc.tex_scale * (0.5 if style == "water" else 1.0)
    ch, cw = int(math.ceil(HEIGHT / scale)), int(math.ceil(WIDTH / scale))
    big = _mirror_tile(tex, 1 + max(ch, cw) // tex.shape[0])
    oy = int((sc.cam_origin[0] * tex.shape[0] + sc.cam_velocity[0] * frame) % tex.shape[0])
    ox = int((sc.cam_origin[1] * tex.shape[1] + sc.cam_velocity[1] * frame) % tex.shape[1])
    grey = cv2.resize(np.ascontiguousarray(big[oy:oy + ch, ox:ox + cw]), (WIDTH, HEIGHT),
                      interpolation=cv2.INTER_LINEAR)
    if style == "water":      # long smooth swells instead of grains
        grey = cv2.GaussianBlur(grey, (0, 0), sigmaX=9, sigmaY=2)
        grey = (grey - grey.min()) / max(1e-6, float(grey.max() - grey.min()))
    lo, hi = (np.asarray(c, dtype=np.float32) for c in _PALETTES[style])
    rgb = lo + grey[..., None] * (hi - lo)
    if style == "road":
        rgb = _draw_road(rgb, sc, src, frame)
    return rgb * sc.tint.astype(np.float32)


def _draw_road(rgb: np.ndarray, sc: _Scene, src: Sources, frame: int) -> np.ndarray:

    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    a = math.radians(sc.road_angle)
    cx = WIDTH / 2 + sc.road_offset * WIDTH
    cy = HEIGHT / 2
    dx, dy = math.cos(a) * 1000, math.sin(a) * 1000
    p0, p1 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
    cv2.line(mask, p0, p1, 255, thickness=int(HEIGHT * 0.32), lineType=cv2.LINE_AA)
    lanes = np.zeros_like(mask)
    shift = (frame * 7) % 40
    for t in range(-1000 + shift, 1000, 40):       # dashed centre line
        q0 = (int(cx + math.cos(a) * t), int(cy + math.sin(a) * t))
        q1 = (int(cx + math.cos(a) * (t + 18)), int(cy + math.sin(a) * (t + 18)))
        cv2.line(lanes, q0, q1, 255, thickness=2, lineType=cv2.LINE_AA)
    grain = cv2.resize(src.get("gravel"), (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    asphalt = (0.22 + 0.18 * grain)[..., None] * np.array([1.0, 1.0, 1.04], np.float32)
    m = (mask.astype(np.float32) / 255.0)[..., None]
    out = rgb * (1 - m) + asphalt * m
    ln = (lanes.astype(np.float32) / 255.0)[..., None] * 0.8
    return out * (1 - ln) + 0.9 * ln


def _photo_bg(sc: _Scene, frame: int, src: Sources) -> np.ndarray:

    photo = src.get(sc.spec.background.split(":", 1)[1])
    ph, pw = photo.shape[:2]
    ch = max(16, int(ph * sc.crop[2]))
    cw = min(pw, int(ch * WIDTH / HEIGHT))
    ch = min(ph, ch)
    oy = int(_bounce(sc.crop[0] + 0.01 * frame * sc.cam_velocity[0]) * (ph - ch))
    ox = int(_bounce(sc.crop[1] + 0.01 * frame * sc.cam_velocity[1]) * (pw - cw))
    rgb = cv2.resize(np.ascontiguousarray(photo[oy:oy + ch, ox:ox + cw]), (WIDTH, HEIGHT),
                     interpolation=cv2.INTER_CUBIC)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 1.5)
    grey = rgb.mean(axis=2, keepdims=True)
    return (0.6 * rgb + 0.4 * grey) * sc.tint.astype(np.float32)   # hazy, desaturated


def background(sc: _Scene, frame: int, src: Sources, rng: np.random.Generator) -> np.ndarray:
    """The frame's background, RGB float32 ``[HEIGHT, WIDTH, 3]``, with light and colour jitter."""
    if sc.spec.background.startswith("photo:"):
        rgb = _photo_bg(sc, frame, src)
    else:
        rgb = _texture_bg(sc, frame, src)
    ramp = np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32)[None, :, None]
    gy = np.linspace(-1.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    g = rng.uniform(-0.12, 0.12, size=2).astype(np.float32)
    light = 1.0 + g[0] * ramp + g[1] * gy
    gain = rng.uniform(0.92, 1.08, size=3).astype(np.float32) * np.float32(rng.uniform(0.9, 1.1))
    return rgb * light * gain


# ---------------------------------------------------------------------------
# Objects: drawn at SUPERSAMPLE x size on an RGB + alpha canvas.
# ---------------------------------------------------------------------------

def _c(colour) -> tuple[float, float, float]:
    return tuple(float(v) for v in colour)


def _draw_car(rgb, alpha, w, h, sc, rng):

    r = int(h * 0.3)
    cv2.rectangle(alpha, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
    cv2.rectangle(alpha, (0, r), (w - 1, h - 1 - r), 1.0, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1)
    rgb[:] = sc.obj_colour
    dark = _c(sc.obj_colour * 0.25)
    cv2.rectangle(rgb, (int(w * 0.62), int(h * 0.12)), (int(w * 0.78), int(h * 0.88)), dark, -1)
    cv2.rectangle(rgb, (int(w * 0.12), int(h * 0.15)), (int(w * 0.22), int(h * 0.85)), dark, -1)


def _draw_truck(rgb, alpha, w, h, sc, rng):

    cab = int(w * 0.24)
    cv2.rectangle(alpha, (0, 0), (w - cab - 3, h - 1), 1.0, -1)
    cv2.rectangle(alpha, (w - cab, int(h * 0.08)), (w - 1, int(h * 0.92)), 1.0, -1)
    cv2.rectangle(alpha, (w - cab - 4, int(h * 0.3)), (w - cab, int(h * 0.7)), 1.0, -1)
    rgb[:] = sc.obj_colour2
    cv2.rectangle(rgb, (w - cab - 4, 0), (w - 1, h - 1), _c(sc.obj_colour), -1)
    cv2.rectangle(rgb, (w - int(cab * 0.45), int(h * 0.15)), (w - int(cab * 0.2), int(h * 0.85)),
                  _c(sc.obj_colour * 0.3), -1)


def _draw_boat(rgb, alpha, w, h, sc, rng):

    hull = np.array([[0, h * 0.12], [w * 0.7, 0], [w - 1, h * 0.5], [w * 0.7, h - 1],
                     [0, h * 0.88]], np.int32)
    cv2.fillPoly(alpha, [hull], 1.0)
    rgb[:] = (0.92, 0.92, 0.9) if sc.obj_colour.mean() > 0.45 else _c(sc.obj_colour)
    cv2.rectangle(rgb, (int(w * 0.25), int(h * 0.28)), (int(w * 0.55), int(h * 0.72)),
                  _c(sc.obj_colour2 * 0.6), -1)


def _draw_person_at(rgb, alpha, cx, cy, hw, hh, clothes, skin):
    """A person seen from above at an angle, in a box of half-width ``hw``, half-height ``hh``
    centred on ``(cx, cy)``: body ellipse below, head above."""

    body = (cx, cy + int(hh * 0.25))
    axes = (max(1, int(hw * 0.9)), max(1, int(hh * 0.7)))
    cv2.ellipse(alpha, body, axes, 0, 0, 360, 1.0, -1)
    cv2.ellipse(rgb, body, axes, 0, 0, 360, clothes, -1)
    hr = max(1, int(min(hw * 0.6, hh * 0.35)))
    head = (cx, cy - int(hh) + hr)
    cv2.circle(alpha, head, hr, 1.0, -1)
    cv2.circle(rgb, head, hr, skin, -1)


def _draw_person(rgb, alpha, w, h, sc, rng):
    skin = _c(np.array([0.85, 0.65, 0.5]) * rng.uniform(0.5, 1.05))
    _draw_person_at(rgb, alpha, w // 2, h // 2, w / 2, h / 2, _c(sc.obj_colour), skin)


def _draw_group(rgb, alpha, w, h, sc, rng):
    k = int(rng.integers(2, 5))
    pw, ph = max(2, int(w * 0.28)), max(2, int(h * 0.8))
    for j in range(k):
        cx = int(pw // 2 + 1 + (w - pw - 2) * (j + rng.uniform(-0.2, 0.2)) / max(1, k - 1))
        cy = int(h // 2 + rng.uniform(-0.08, 0.08) * h)
        clothes = _c(np.clip(sc.obj_colour * rng.uniform(0.6, 1.3, size=3), 0, 1))
        skin = _c(np.array([0.85, 0.65, 0.5]) * rng.uniform(0.5, 1.05))
        _draw_person_at(rgb, alpha, min(w - 1, max(0, cx)), cy, pw / 2, ph / 2, clothes, skin)


def _draw_drone(rgb, alpha, w, h, sc, rng):

    t = max(1, int(w * 0.08))
    r = int(w * 0.2)
    for (x0, y0), (x1, y1) in (((r, r), (w - 1 - r, h - 1 - r)), ((r, h - 1 - r), (w - 1 - r, r))):
        cv2.line(alpha, (x0, y0), (x1, y1), 1.0, t)
        cv2.line(rgb, (x0, y0), (x1, y1), (0.15, 0.15, 0.17), t)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 1.0, -1)
        cv2.circle(rgb, (cx, cy), r, (0.6, 0.62, 0.65), -1)
    cv2.circle(alpha, (w // 2, h // 2), int(w * 0.14), 1.0, -1)
    cv2.circle(rgb, (w // 2, h // 2), int(w * 0.14), _c(sc.obj_colour), -1)


def _draw_whale(rgb, alpha, w, h, sc, rng):

    cv2.ellipse(alpha, (int(w * 0.58), h // 2), (int(w * 0.4), int(h * 0.42)), 0, 0, 360, 1.0, -1)
    tail = np.array([[int(w * 0.2), h // 2], [0, int(h * 0.05)], [int(w * 0.06), h // 2],
                     [0, int(h * 0.95)]], np.int32)
    cv2.fillPoly(alpha, [tail], 1.0)
    rgb[:] = np.array([0.34, 0.38, 0.44]) * (0.7 + 0.6 * sc.obj_colour.mean())


def _draw_horse(rgb, alpha, w, h, sc, rng, src: Sources):

    horse = 1.0 - src.get("horse")          # the silhouette is the dark part
    ys, xs = np.nonzero(horse > 0.5)
    crop = np.ascontiguousarray(horse[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
    alpha[:] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    rgb[:] = np.array([0.42, 0.26, 0.14]) * (0.6 + 0.8 * sc.obj_colour.mean())
    _draw_person_at(rgb, alpha, int(w * 0.45), int(h * 0.2), w * 0.07, h * 0.2,
                    _c(sc.obj_colour2), (0.8, 0.62, 0.5))


def _draw_cutout(rgb, alpha, w, h, sc, rng, src: Sources):

    photo = src.get(sc.spec.kind.split(":", 1)[1])
    ph, pw = photo.shape[:2]
    size = 0.35 + 0.3 * sc.crop[2]
    ch = int(ph * size)
    cw = min(pw, int(ch * w / h))
    oy = int(sc.crop[0] * (ph - ch))
    ox = int(sc.crop[1] * (pw - cw))
    rgb[:] = cv2.resize(np.ascontiguousarray(photo[oy:oy + ch, ox:ox + cw]), (w, h),
                        interpolation=cv2.INTER_AREA)
    cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1.0, -1)


_DRAW: dict[str, Callable] = {"car": _draw_car, "truck": _draw_truck, "boat": _draw_boat,
                              "person": _draw_person, "group": _draw_group,
                              "drone": _draw_drone, "whale": _draw_whale}


def _aspect(sc: _Scene, src: Sources) -> float:
    kind = sc.spec.kind
    if kind == "horse":
        ys, xs = np.nonzero(src.get("horse") < 0.5)
        base = (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)
    elif kind.startswith("cutout:"):
        base = 1.2
    else:
        base = _ASPECT[kind]
    return base * sc.aspect_jitter


def render_object(sc: _Scene, frame: int, src: Sources, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame's object: RGB ``[h, w, 3]``, blurred alpha ``[h, w]``, sharp alpha ``[h, w]``.

    The box area (after rotation) is drawn around the scene's log-area; the sharp alpha
    gives the ground-truth box.
    """

    kind = sc.spec.kind
    area = float(np.clip(10 ** (sc.log_area + rng.normal(0, 0.06)), AREA_MIN, AREA_MAX))
    aspect = _aspect(sc, src)
    if kind in ("person", "horse") or kind.startswith("cutout:"):
        angle = float(rng.uniform(-20, 20))
    else:   # vehicles and animals head where they move (reversed after each bounce)
        vx, vy = (v if (s0 + v * frame) % 2.0 <= 1.0 else -v
                  for s0, v in zip(sc.start, sc.velocity))
        angle = math.degrees(math.atan2(vy * HEIGHT, vx * WIDTH)) + float(rng.normal(0, 6))
    th = math.radians(angle)
    c, s = abs(math.cos(th)), abs(math.sin(th))
    # unrotated w x h with w/h = aspect whose rotated bounding box has the drawn area
    grow = (aspect * c + s) * (aspect * s + c) / aspect
    h0 = math.sqrt(area * WIDTH * HEIGHT / (aspect * grow))
    w0 = aspect * h0
    W, H = max(4, int(round(w0 * SUPERSAMPLE))), max(4, int(round(h0 * SUPERSAMPLE)))
    rgb = np.zeros((H, W, 3), np.float32)
    alpha = np.zeros((H, W), np.float32)
    if kind == "horse":
        _draw_horse(rgb, alpha, W, H, sc, rng, src)
    elif kind.startswith("cutout:"):
        _draw_cutout(rgb, alpha, W, H, sc, rng, src)
    else:
        _DRAW[kind](rgb, alpha, W, H, sc, rng)
    rgb *= np.float32(rng.uniform(0.85, 1.15))
    # rotate on a canvas that holds the whole rotated shape, then area-average down
    D = int(math.ceil(math.hypot(W, H))) + 2 * SUPERSAMPLE
    D += (-D) % SUPERSAMPLE
    M = cv2.getRotationMatrix2D((W / 2, H / 2), -angle, 1.0)
    M[:, 2] += ((D - W) / 2, (D - H) / 2)
    rgba = np.dstack([rgb * alpha[..., None], alpha])
    rgba = cv2.warpAffine(rgba, M, (D, D), flags=cv2.INTER_LINEAR, borderValue=0)
    small = cv2.resize(rgba, (D // SUPERSAMPLE, D // SUPERSAMPLE), interpolation=cv2.INTER_AREA)
    sharp = small[..., 3].copy()
    sigma = float(rng.uniform(0.0, 1.0))
    if sigma > 0.3:
        small = cv2.GaussianBlur(small, (0, 0), sigma)
    a = np.clip(small[..., 3], 0.0, 1.0)
    colour = small[..., :3] / np.maximum(small[..., 3:], 1e-6)
    return np.clip(colour, 0, 1), a, sharp


# ---------------------------------------------------------------------------
# Frames.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One generated image: its place in the layout, its JPEG bytes and its annotation."""

    subcategory: str
    stem: str
    jpeg: bytes
    annotation: Annotation

    @property
    def area_fraction(self) -> float:
        xmin, ymin, xmax, ymax = self.annotation.box
        return (xmax - xmin) * (ymax - ymin) / float(WIDTH * HEIGHT)


def _compose(sc: _Scene, frame: int, src: Sources, rng: np.random.Generator
             ) -> tuple[np.ndarray, tuple[int, int, int, int]]:

    img = background(sc, frame, src, rng)
    colour, a, sharp = render_object(sc, frame, src, rng)
    ys, xs = np.nonzero(sharp > 0.5)
    if ys.size == 0:     # a sliver thinner than half a pixel: take what is there
        ys, xs = np.nonzero(sharp > 0.0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ph, pw = a.shape
    # object centre from the scene's bouncing trajectory; the whole patch stays inside
    u = _bounce(sc.start[0] + sc.velocity[0] * frame)
    v = _bounce(sc.start[1] + sc.velocity[1] * frame)
    bw, bh = x1 - x0, y1 - y0
    left = int(round(u * (WIDTH - bw - 4))) + 2 - x0
    top = int(round(v * (HEIGHT - bh - 4))) + 2 - y0
    # clip the patch to the frame (only its empty margin can fall outside)
    px0, py0 = max(0, -left), max(0, -top)
    px1, py1 = min(pw, WIDTH - left), min(ph, HEIGHT - top)
    region = (slice(top + py0, top + py1), slice(left + px0, left + px1))
    ap = a[py0:py1, px0:px1, None]
    cp = colour[py0:py1, px0:px1]
    # soft shadow, offset down-right, under the object
    shadow = cv2.GaussianBlur(a, (0, 0), 1.2)
    sh = np.zeros((HEIGHT, WIDTH), np.float32)
    dy = dx = max(1, int(round(math.sqrt(bw * bh) * 0.08)))
    sy0, sx0 = top + py0 + dy, left + px0 + dx
    sy1, sx1 = min(HEIGHT, top + py1 + dy), min(WIDTH, left + px1 + dx)
    sh[sy0:sy1, sx0:sx1] = shadow[py0:py0 + sy1 - sy0, px0:px0 + sx1 - sx0]
    img *= (1.0 - 0.35 * sh)[..., None]
    img[region] = img[region] * (1.0 - ap) + cp * ap
    img += rng.normal(0.0, 0.012, size=img.shape).astype(np.float32)   # sensor noise
    box = (int(left + x0), int(top + y0), int(left + x1), int(top + y1))
    return np.clip(img, 0.0, 1.0), box


def _label(kind: str) -> str:
    return {"cutout:astronaut": "rider", "cutout:camera": "building",
            "cutout:chelsea": "animal"}.get(kind, kind)


def _counts(n: int) -> list[int]:
    n_sub = min(n, len(SPECS), max(2, int(round(math.sqrt(n) * 1.25))))
    return [n // n_sub + (1 if i < n % n_sub else 0) for i in range(n_sub)]


def _check_args(n: int, seed: int) -> None:
    if n < 1:
        raise SynthError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise SynthError(f"--seed must be a non-negative integer, got {seed}")


def frames(n: int, seed: int, src: Sources | None = None) -> Iterator[Frame]:
    """The ``n`` frames of the set for ``seed``, sub-category by sub-category."""

    _check_args(n, seed)
    src = src or Sources()
    for idx, count in enumerate(_counts(n)):
        spec = SPECS[idx]
        sc = _scene(spec, np.random.default_rng([seed, idx]))
        for frame in range(count):
            rng = np.random.default_rng([seed, idx, frame + 1])
            img, box = _compose(sc, frame, src, rng)
            bgr = np.ascontiguousarray((img[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:    # pragma: no cover - OpenCV without a JPEG codec
                raise SynthError("OpenCV could not encode a JPEG (is its JPEG codec missing?)")
            stem = f"{frame + 1:04d}"
            ann = Annotation(f"{stem}.jpg", WIDTH, HEIGHT, box, _label(spec.kind))
            yield Frame(spec.name, stem, buf.tobytes(), ann)


# ---------------------------------------------------------------------------
# Writing the folder.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthSummary:
    out: Path
    n_images: int
    subcategories: tuple[str, ...]
    area_fractions: tuple[float, ...]

    def line(self) -> str:
        a = np.asarray(self.area_fractions) * 100
        return (f"synthetic data set (generated): {self.n_images} images in "
                f"{len(self.subcategories)} sub-categories -> {self.out}; object area "
                f"median {np.median(a):.2f}% of the frame, {np.mean(a < 2):.0%} under 2%, "
                f"max {a.max():.2f}%")


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} exists and is not a folder: choose another path")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise SynthError(f"--out {out} is a non-empty folder that this generator did not "
                         "write: choose an empty or new folder")


def generate(out: str | os.PathLike, n: int, seed: int) -> SynthSummary:
    """Write the set into ``out`` (replacing a set this generator wrote there before).

    The frames go to a temporary sibling folder first, which then takes ``out``'s place,
    so an interrupted run leaves the old folder as it was.
    """
    out = Path(out)
    _check_args(n, seed)
    _prepare_out(out)
    # staged_dir: a hidden sibling named with this process's id (a later run removes one
    # a killed run left), folder modes from the umask, swapped into place when complete;
    # SIGTERM is turned into an exception by the command, so it cleans up as SIGINT does.
    with staged_dir(out, replace=True) as tmp:
        areas: list[float] = []
        subs: list[str] = []
        for fr in frames(n, seed):
            folder = tmp / fr.subcategory
            if fr.subcategory not in subs:
                folder.mkdir()
                subs.append(fr.subcategory)
            (folder / f"{fr.stem}.jpg").write_bytes(fr.jpeg)
            (folder / f"{fr.stem}.xml").write_text(to_xml(fr.annotation), encoding="utf-8")
            areas.append(fr.area_fraction)
        marker = {"generator": "pynq-codesign data synth", "version": GENERATOR_VERSION,
                  "n": n, "seed": seed, "subcategories": subs,
                  "note": "synthetic stand-in for the DAC-SDC data set"}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return SynthSummary(out, len(areas), tuple(subs), tuple(areas))


def main(args: argparse.Namespace) -> int:
    """``codesign data synth --out DIR --n N --seed S``."""
    summary = generate(args.out, args.n, args.seed)
    print(summary.line())
    return 0

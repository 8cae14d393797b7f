"""Training-time augmentation of a batch of network inputs and their boxes (torch).

The cached inputs are already pre-processed (resized, normalised, input-quantised), so
augmentation works on them directly, batch-wise, with one affine resampling per batch
(:func:`torch.nn.functional.grid_sample`, forward only: deterministic on the CPU):

* **zoom** by a factor drawn log-uniformly from ``[1/zoom, zoom]`` (same on both axes, so
  the object keeps its aspect), the view window placed so that the whole box stays in the
  frame (zooming out pads with zeros, the normalised mean colour);
* **shift**: the window's place is uniform among the places that keep the box inside and
  do not leave more than ``shift`` of the frame outside the image;
* **horizontal flip** with probability ``flip``;
* **colour jitter**: per image and channel, a gain ``1 +- colour`` and an offset
  ``+- colour`` (in normalised units), then the input format's range (what the hardware
  can take).

Every random number comes from the ``torch.Generator`` passed in, so a run is repeatable
for a seed (the trainer seeds one per epoch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths (0 turns one off)."""

    zoom: float = 1.5        # zoom factor range [1/zoom, zoom]
    shift: float = 0.15      # most of the frame (relative) the window may leave the image
    flip: float = 0.5        # probability of a horizontal flip
    colour: float = 0.15     # gain and offset jitter (normalised units)

    @property
    def enabled(self) -> bool:
        return self.zoom > 1 or self.shift > 0 or self.flip > 0 or self.colour > 0


def _uniform(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def windows(boxes: torch.Tensor, aug: Augment, g: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """View windows ``[N, 4]`` (x0, y0, width, height, relative to the image) holding each
    box ``[N, 4]`` (xyxy relative), and the flip flags ``[N]``."""
    n = boxes.shape[0]
    b = boxes.to(torch.float64)
    if aug.zoom > 1:
        z = torch.exp((2 * _uniform(n, g) - 1) * torch.log(torch.tensor(aug.zoom,
                                                                           dtype=torch.float64)))
    else:
        z = torch.ones(n, dtype=torch.float64)
    size = 1.0 / z                                      # window size, both axes (relative)
    origin = []
    for lo_box, hi_box in ((b[:, 0], b[:, 2]), (b[:, 1], b[:, 3])):
        # keep the box inside: origin in [hi_box - size, lo_box]
        lo = hi_box - size
        hi = lo_box
        # stay near the image: origin in [min(0, 1 - size) - shift, max(0, 1 - size) + shift]
        lo = torch.maximum(lo, torch.minimum(torch.zeros_like(size), 1 - size) - aug.shift)
        hi = torch.minimum(hi, torch.maximum(torch.zeros_like(size), 1 - size) + aug.shift)
        centred = (lo_box + hi_box) / 2 - size / 2          # if the box is larger than the window
        u = _uniform(n, g)
        origin.append(torch.where(hi >= lo, lo + u * (hi - lo), centred))
    flip = _uniform(n, g) < aug.flip
    return torch.stack([origin[0], origin[1], size, size], 1), flip


def augment_batch(x: torch.Tensor, boxes: torch.Tensor, aug: Augment, g: torch.Generator,
                  limits: tuple[float, float] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented copies of inputs ``x [N, C, H, W]`` and boxes ``[N, 4]`` (xyxy relative).

    ``limits`` (lo, hi) clamps the jittered input to the input format's real range.
    """
    n, c = x.shape[:2]
    win, flip = windows(boxes, aug, g)
    x0, y0, ww, wh = win.unbind(1)
    sign = torch.where(flip, -1.0, 1.0).to(torch.float64)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = ww * sign
    theta[:, 0, 2] = 2 * x0 + ww - 1
    theta[:, 1, 1] = wh
    theta[:, 1, 2] = 2 * y0 + wh - 1
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x.contiguous(), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    b = boxes.to(torch.float64)
    nb = torch.stack([(b[:, 0] - x0) / ww, (b[:, 1] - y0) / wh,
                      (b[:, 2] - x0) / ww, (b[:, 3] - y0) / wh], 1)
    nb = torch.where(flip[:, None], torch.stack([1 - nb[:, 2], nb[:, 1], 1 - nb[:, 0],
                                                 nb[:, 3]], 1), nb)
    nb = nb.clamp(0.0, 1.0)
    if aug.colour > 0:
        gain = 1 + aug.colour * (2 * torch.rand(n, c, 1, 1, generator=g) - 1)
        offset = aug.colour * (2 * torch.rand(n, c, 1, 1, generator=g) - 1)
        out = out * gain.to(out.dtype) + offset.to(out.dtype)
    if limits is not None:
        out = out.clamp(limits[0], limits[1])
    return out.contiguous(memory_format=torch.channels_last), nb.to(boxes.dtype)

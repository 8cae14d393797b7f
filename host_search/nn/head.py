"""The bounding-box back-end: decoding in torch and the training loss.

The last layer (a PW-Conv1) gives per grid cell ``anchors x (tx, ty, tw, th, conf)``
(:class:`pynq_codesign.design.Decode`). :func:`decode_all` applies the very formula of
:func:`pynq_codesign.prepost.decode` to every cell and anchor (in torch, differentiable);
:func:`best_boxes` picks the most confident one like the board does (it is tested against
``prepost.decode``, which evaluation itself uses).

:func:`detection_loss` is in the style of the DAC-SDC winners (YOLO-like, one object):
the *responsible* cell is the one holding the box centre and the responsible anchor the one
whose shape matches the box best (IoU of centred boxes); its confidence learns 1 by binary
cross-entropy and every other cell/anchor learns 0 (mean over them, weighted); its box
learns ``sigmoid(tx), sigmoid(ty)`` that place the true centre
(:meth:`~pynq_codesign.design.Decode.centre_offset`) and ``tw, th`` =
``log(size / anchor)`` (squared errors), plus optionally ``1 - GIoU`` of the decoded box;
a softmax cross-entropy over all cells and anchors trains the choice the decoder makes.
With ``neighbours`` the box is trained at the cells around the true centre too (the
centre target is the true centre where the decoder's ``centre_range`` reaches it, else the
nearest point it reaches), so that the box is right wherever near the centre the decoder's
arg-max lands; each image weighs the same however many cells it trains.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pynq_codesign.design import Decode

#: tw, th are clipped to this range before exp(), as prepost.decode does.
T_CLIP = 8.0


def _split(out: torch.Tensor, na: int) -> torch.Tensor:
    """[N, A*5, GH, GW] -> [N, GH, GW, A, 5]."""
    n, ch, gh, gw = out.shape
    if ch != 5 * na:
        raise ValueError(f"output has {ch} channels, the decoder expects {5 * na}")
    return out.permute(0, 2, 3, 1).reshape(n, gh, gw, na, 5)


def decode_all(out: torch.Tensor, dec: Decode) -> tuple[torch.Tensor, torch.Tensor]:
    """Every cell's and anchor's box ``[N, GH, GW, A, 4]`` (xmin, ymin, xmax, ymax relative,
    clipped to 0..1) and confidence logit ``[N, GH, GW, A]``."""
    na = len(dec.anchors)
    v = _split(out, na)
    _, gh, gw, _, _ = v.shape
    gy = torch.arange(gh, dtype=out.dtype, device=out.device).view(1, gh, 1, 1)
    gx = torch.arange(gw, dtype=out.dtype, device=out.device).view(1, 1, gw, 1)
    anchors = torch.tensor(dec.anchors, dtype=out.dtype, device=out.device)
    return _boxes(v, gx, gy, anchors, dec, gh, gw), v[..., 4]


def _decode_at(v: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, a: torch.Tensor,
               dec: Decode, gh: int, gw: int) -> torch.Tensor:
    """The boxes ``[N, 4]`` of the cells ``(gy, gx)``, anchors ``a`` with outputs ``v [N, 5]``:
    :func:`decode_all` for one cell per image (the loss needs no other)."""
    anchors = torch.tensor(dec.anchors, dtype=v.dtype, device=v.device)[a]
    return _boxes(v, gx.to(v.dtype), gy.to(v.dtype), anchors, dec, gh, gw)


def _boxes(v: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, anchors: torch.Tensor,
           dec: Decode, gh: int, gw: int) -> torch.Tensor:
    """The decoder's box formula (:func:`pynq_codesign.prepost.decode`) in torch: boxes
    ``[..., 4]`` clipped to 0..1 from outputs ``v[..., 0:4]`` at cells ``(gy, gx)`` with
    anchor sizes ``anchors[..., 0:2]`` (all broadcast against each other)."""
    cx = (gx + dec.centre_offset(torch.sigmoid(v[..., 0]))) / gw
    cy = (gy + dec.centre_offset(torch.sigmoid(v[..., 1]))) / gh
    bw = anchors[..., 0] * torch.exp(torch.clamp(v[..., 2], -T_CLIP, T_CLIP))
    bh = anchors[..., 1] * torch.exp(torch.clamp(v[..., 3], -T_CLIP, T_CLIP))
    box = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
    return torch.clamp(box, 0.0, 1.0)


def best_boxes(out: torch.Tensor, dec: Decode) -> tuple[torch.Tensor, torch.Tensor]:
    """The most confident box per image ``[N, 4]`` and its confidence (probability) ``[N]``.

    Ties go to the first cell in (row, column, anchor) order, as in ``prepost.decode``.
    """
    boxes, conf = decode_all(out, dec)
    n = out.shape[0]
    k = conf.reshape(n, -1).argmax(dim=1)
    return boxes.reshape(n, -1, 4)[torch.arange(n), k], torch.sigmoid(
        conf.reshape(n, -1)[torch.arange(n), k])


@dataclass(frozen=True)
class Targets:
    """Where each image's object is assigned and what the head should output there."""

    gy: torch.Tensor          # [N] long: responsible cell row
    gx: torch.Tensor          # [N] long: responsible cell column
    anchor: torch.Tensor      # [N] long: responsible anchor
    txy: torch.Tensor         # [N, 2]: centre offset within the cell, 0..1
    twh: torch.Tensor         # [N, 2]: log(size / anchor)


def assign(boxes: torch.Tensor, dec: Decode, gh: int, gw: int) -> Targets:
    """Responsible cell and anchor of each ground-truth box ``[N, 4]`` (relative xyxy)."""
    boxes = boxes.to(torch.float64)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    w = torch.clamp(boxes[:, 2] - boxes[:, 0], min=1e-6)
    h = torch.clamp(boxes[:, 3] - boxes[:, 1], min=1e-6)
    gx = torch.clamp((cx * gw).floor().long(), 0, gw - 1)
    gy = torch.clamp((cy * gh).floor().long(), 0, gh - 1)
    anchors = torch.tensor(dec.anchors, dtype=torch.float64)
    inter = torch.minimum(w[:, None], anchors[:, 0]) * torch.minimum(h[:, None], anchors[:, 1])
    union = (w * h)[:, None] + anchors[:, 0] * anchors[:, 1] - inter
    a = (inter / union).argmax(dim=1)
    txy = torch.stack([cx * gw - gx, cy * gh - gy], dim=1).clamp(0.0, 1.0)
    twh = torch.stack([torch.log(w / anchors[a, 0]), torch.log(h / anchors[a, 1])], dim=1)
    return Targets(gy, gx, a, txy.float(), twh.float())


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of boxes ``[..., 4]`` (xyxy)."""
    ix = torch.clamp(torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]),
                     min=0)
    iy = torch.clamp(torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]),
                     min=0)
    inter = ix * iy
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    hull = (cw * ch).clamp(min=1e-9)
    iou = inter / union.clamp(min=1e-9)
    return iou - (hull - union) / hull


@dataclass(frozen=True)
class LossWeights:
    coord: float = 5.0       # box offsets and log sizes
    obj: float = 1.0         # confidence of the responsible anchor
    noobj: float = 10.0      # mean confidence loss of all the others (many cells: weighted up)
    giou: float = 3.0        # 1 - GIoU of each box-trained cell's box (0 turns it off)
    select: float = 1.0      # softmax cross-entropy of the responsible cell/anchor among all
    neighbours: float = 1.5  # > 0: the box is also trained at every cell of the responsible
    #                          anchor within this many cells of the true centre


def fit_anchors(boxes, k: int, iters: int = 20) -> tuple[tuple[float, float], ...]:
    """``k`` anchor sizes (relative width, height) fitted to boxes ``[N, 4]`` (xyxy):
    k-means of the log sizes, started from the size quantiles; deterministic."""
    import numpy as np
    b = np.asarray(boxes, dtype=np.float64)
    wh = np.log(np.clip(np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1), 1e-4, 1.0))
    order = np.argsort(wh.sum(1), kind="stable")
    centres = np.stack([wh[order[int((i + 0.5) * len(wh) / k)]] for i in range(k)])
    for _ in range(iters):
        lab = ((wh[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([wh[lab == j].mean(0) if (lab == j).any() else centres[j]
                            for j in range(k)])
    centres = centres[np.argsort(centres.sum(1), kind="stable")]
    return tuple((round(float(np.exp(w)), 4), round(float(np.exp(h)), 4)) for w, h in centres)


def _near_centre(boxes: torch.Tensor, a: torch.Tensor, gh: int, gw: int, na: int,
                 radius: float) -> torch.Tensor:
    """``[N, GH, GW, A]`` (bool): the cells whose centre lies within ``radius`` cells of
    the box's centre, for each image's anchor ``a``."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 * gw
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 * gh
    xs = torch.arange(gw, dtype=boxes.dtype, device=boxes.device) + 0.5
    ys = torch.arange(gh, dtype=boxes.dtype, device=boxes.device) + 0.5
    d2 = (ys[None, :, None] - cy[:, None, None]) ** 2 + (xs[None, None, :] - cx[:, None, None]) ** 2
    near = (d2 <= radius ** 2)[..., None]                                 # [N, GH, GW, 1]
    return near & F.one_hot(a, na).bool()[:, None, None, :]


def detection_loss(out: torch.Tensor, boxes: torch.Tensor, dec: Decode,
                   weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict]:
    """The loss of head outputs ``[N, A*5, GH, GW]`` against boxes ``[N, 4]`` and its parts."""
    na = len(dec.anchors)
    v = _split(out, na)
    n, gh, gw, _, _ = v.shape
    t = assign(boxes.detach().cpu(), dec, gh, gw)
    dev = out.device
    bx = boxes.to(dev, out.dtype)
    idx = torch.arange(n, device=dev)
    gy, gx, a = t.gy.to(dev), t.gx.to(dev), t.anchor.to(dev)
    conf = v[..., 4]
    # the cells whose box is trained: the responsible one, and with ``neighbours`` every
    # cell of the responsible anchor within that many cells of the true centre
    boxed = torch.zeros_like(conf, dtype=torch.bool)
    if weights.neighbours > 0:
        boxed = _near_centre(bx, a, gh, gw, na, weights.neighbours)
    boxed[idx, gy, gx, a] = True
    target = torch.zeros_like(conf)
    target[idx, gy, gx, a] = 1.0
    bce = F.binary_cross_entropy_with_logits(conf, target, reduction="none")
    pos = bce[idx, gy, gx, a].mean()
    negative = ~boxed
    neg = bce[negative].sum() / max(1, int(negative.sum()))
    ii, yy, xx, aa = boxed.nonzero(as_tuple=True)
    per_image = 1.0 / boxed.sum(dim=(1, 2, 3)).to(out.dtype)[ii] / n   # each image weighs 1/N
    vb = v[ii, yy, xx, aa]                                                # [P, 5]
    cx = (bx[ii, 0] + bx[ii, 2]) / 2 * gw - xx.to(out.dtype)
    cy = (bx[ii, 1] + bx[ii, 3]) / 2 * gh - yy.to(out.dtype)
    # sigmoid(t) that places the centre there, or the nearest point the cell reaches
    txy = dec.centre_sigmoid(torch.stack([cx, cy], dim=1)).clamp(0.0, 1.0)
    anchor_wh = torch.tensor(dec.anchors, dtype=out.dtype, device=dev)[aa]
    twh = torch.log((bx[ii, 2:] - bx[ii, :2]).clamp(min=1e-6) / anchor_wh)
    l_xy = (per_image * ((torch.sigmoid(vb[:, :2]) - txy) ** 2).sum(1)).sum()
    l_wh = (per_image * ((vb[:, 2:4] - twh) ** 2).sum(1)).sum()
    total = weights.coord * (l_xy + l_wh) + weights.obj * pos + weights.noobj * neg
    parts = {"xy": float(l_xy.detach()), "wh": float(l_wh.detach()), "obj": float(pos.detach()),
             "noobj": float(neg.detach())}
    if weights.select:
        l_s = F.cross_entropy(conf.reshape(n, -1), (gy * gw + gx) * na + a)
        total = total + weights.select * l_s
        parts["select"] = float(l_s.detach())
    if weights.giou:
        g = giou(_decode_at(vb, xx, yy, aa, dec, gh, gw), bx[ii])
        l_g = (per_image * (1.0 - g)).sum()
        total = total + weights.giou * l_g
        parts["giou"] = float(l_g.detach())
    return total, parts

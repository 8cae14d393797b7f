"""Pre-processing and box decoding, as the design point's data says: one implementation
for training, export and the board.

* :func:`preprocess`: a camera frame (as OpenCV reads it, BGR uint8 ``[H, W, 3]``) to the
  network's input: colour order, resize, ``(x/255 - mean) / std``, float64 ``[H, W, C]``.
  :func:`quantize_input` turns that into the input format's integer codes.
* :func:`decode`: the last layer's output (real values ``[GH, GW, A*5]``) to one box
  ``(xmin, ymin, xmax, ymax)`` relative to the image, and its confidence.
* :func:`iou`: intersection over union of boxes (the DAC-SDC score).

Only numpy here; OpenCV (the board image's own cv2) is imported where resizing needs it.
"""
from __future__ import annotations

import numpy as np

from .design import Decode, Network, Preprocess
from .errors import CodesignError
from .fixedpoint import Rounding, quantize

_CV_INTER = {"bilinear": "INTER_LINEAR", "area": "INTER_AREA", "nearest": "INTER_NEAREST"}


class OpenCVMissing(CodesignError):
    """OpenCV is not importable here."""


#: OpenCV's and FFmpeg's own warnings are silenced: the project checks every image and
#: video itself and reports a problem in one line (a warning before it would only confuse).
QUIET_OPENCV_ENV = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def cv2_module():
    """OpenCV, imported on first use (the board image ships its own cv2), with its and
    FFmpeg's warnings silenced (:data:`QUIET_OPENCV_ENV`)."""
    import os
    for k, v in QUIET_OPENCV_ENV.items():
        os.environ.setdefault(k, v)
    try:
        import cv2  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the machine
        raise OpenCVMissing("OpenCV (cv2) is needed to read and resize images: on the board "
                            "use the PYNQ image's python; on a host `pip install "
                            "opencv-python-headless`") from None
    try:                 # cv2 imported earlier (before the environment was set)
        cv2.setLogLevel(2)          # 2 = errors only (no [ WARN ] lines)
    except (AttributeError, cv2.error):  # pragma: no cover - old OpenCV
        pass
    return cv2


def resize(image: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """Resize ``[H, W, C]`` uint8 with OpenCV's interpolation ``method``."""
    cv2 = cv2_module()
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=getattr(cv2, _CV_INTER[method]))


def preprocess(image_bgr: np.ndarray, network: Network) -> np.ndarray:
    """A BGR uint8 frame to the network's real-valued input ``[H, W, C]`` (float64)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected a colour image [H, W, 3], got shape {image_bgr.shape}")
    p: Preprocess = network.preprocess
    img = resize(image_bgr, network.input_height, network.input_width, p.resize)
    if p.color_order == "rgb":
        img = img[:, :, ::-1]
    x = img.astype(np.float64) / 255.0
    return (x - np.asarray(p.mean)) / np.asarray(p.std)


def quantize_input(x: np.ndarray, network: Network, rounding: Rounding | str) -> np.ndarray:
    """Real input ``[H, W, C]`` to the input format's codes (int64)."""
    return quantize(x, network.input_format, rounding)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def decode(out: np.ndarray, dec: Decode) -> tuple[np.ndarray, float]:
    """The best box of one output map ``[GH, GW, A*5]`` (real values).

    Returns ``(box, confidence)``, the box as ``[xmin, ymin, xmax, ymax]`` relative to the
    image (0..1, clipped), the confidence as a probability.
    """
    gh, gw, ch = out.shape
    na = len(dec.anchors)
    if ch != 5 * na:
        raise ValueError(f"output has {ch} channels, the decoder expects {5 * na}")
    v = out.reshape(gh, gw, na, 5).astype(np.float64)
    k = int(np.argmax(v[..., 4]))
    gy, rem = divmod(k, gw * na)
    gx, a = divmod(rem, na)
    tx, ty, tw, th, conf = v[gy, gx, a]
    aw, ah = dec.anchors[a]
    cx = (gx + dec.centre_offset(_sigmoid(tx))) / gw
    cy = (gy + dec.centre_offset(_sigmoid(ty))) / gh
    bw = aw * np.exp(np.clip(tw, -8, 8))
    bh = ah * np.exp(np.clip(th, -8, 8))
    box = np.clip(np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]), 0.0, 1.0)
    return box, float(_sigmoid(conf))


def to_pixels(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """A relative box to pixel coordinates of a ``width x height`` image (int64)."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return np.round(np.asarray(box, dtype=np.float64) * scale).astype(np.int64)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``[..., 4]`` (xmin, ymin, xmax, ymax), float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ix * iy
    area = lambda z: np.clip(z[..., 2] - z[..., 0], 0, None) * np.clip(z[..., 3] - z[..., 1],
                                                                      0, None)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)

"""What the board's CPU does for one frame: counts of operations, no times.

The detection pipeline (:mod:`pynq_codesign.pipeline`) describes each frame's CPU work in
a :class:`CpuWork` record: pixels decoded and resized, elements normalised and quantised,
elements packed into (or unpacked from) the DMA layout, bytes copied and written, output
elements decoded into a box, pixels encoded, files touched and Python-level calls. These are
facts of the workload, the same on any machine. A real board measures how long the work
took on its own clock; the simulated board turns the record into seconds with its own
model of a Cortex-A9 (:mod:`pynq_codesign.platform.sim.cpu`), so its figures depend on
the board (its seed), never on the host that runs the simulation.

Board-side code: no numpy needed.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

#: Python-level calls (function calls, numpy calls on whole arrays, the thread hand-off)
#: per phase of a frame, as the pipeline's code makes them (counted from the source, ±20 %).
CALLS_PREPARE_CODES = 12      # given input codes: pack_feature, load_input, queue hand-off
CALLS_PREPARE_IMAGE = 45      # + read_image (checks, decoder-message catcher), resize, scale
CALLS_DECODE = 40             # unpack, dequantize, argmax, the box's scalar numpy maths
CALLS_WRITE_IMAGE = 70        # copy, draw (rectangles, labels), imwrite, the XML, its score
CALLS_WRITE_VIDEO = 15        # copy, draw, one frame to the video writer


@dataclass
class CpuWork:
    """Operation counts of one phase (pre-processing or decoding) of one frame."""

    calls: int = 0             # Python-level calls
    files: int = 0             # files opened (read or written)
    file_bytes: int = 0        # bytes read from or written to files
    jpeg_px: int = 0           # pixels decoded from JPEG (or a video frame)
    png_px: int = 0            # pixels decoded from PNG
    copy_bytes: int = 0        # bytes copied (BMP pixels, image copies, the DMA buffer fill)
    resize_px: int = 0         # destination pixels of a bilinear / nearest resize
    area_px: int = 0           # source pixels of an area resize (it reads every one)
    norm_elems: int = 0        # elements through the float64 normalise + quantise chain
    layout_elems: int = 0      # elements of the DMA layout packed or unpacked
    box_elems: int = 0         # output elements dequantised and searched for the best box
    encode_px: int = 0         # pixels encoded (annotated JPEG, video frame)

    def __iadd__(self, other: "CpuWork") -> "CpuWork":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def __add__(self, other: "CpuWork") -> "CpuWork":
        out = CpuWork(**{f.name: getattr(self, f.name) for f in fields(self)})
        out += other
        return out

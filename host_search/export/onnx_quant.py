"""The quantised ONNX model: the design's network with QONNX ``Quant`` nodes.

Written with the onnx helper API (no exporter in between), so every node says what the
accelerator does:

* ``input`` (float ``[1, C, H, W]``: static shapes, as QONNX/FINN tools expect; the
  real-valued pre-processed image) -> ``Quant`` with the
  network's input format (never narrow, as :func:`pynq_codesign.prepost.quantize_input`);
* per convolution: the float weights (batch norm folded) -> ``Quant`` with the layer's
  weight format (narrow as the overlay), the float bias -> ``Quant`` at the accumulator's
  scale (:func:`pynq_codesign.fixedpoint.bias_format`, ``bias_bits`` wide, not narrow),
  ``Conv`` (group = channels for depthwise, pads 1 for 3x3), ``Relu`` or ``Clip`` (ReLU6:
  0 .. :func:`pynq_codesign.wire.relu6_limit` at the accumulator's scale), then ``Quant``
  into the layer's output format (narrow as the overlay);
* per pool: ``MaxPool`` 2x2, stride 2 (floor: an odd edge row/column is dropped);
* ``output``: the head's real values ``[1, anchors*5, GH, GW]``.

Every ``Quant`` has ``scale = 2**-frac``, ``zeropt = 0``, ``bitwidth = bits``,
``signed = 1`` and ``rounding_mode`` from :data:`pynq_codesign.fixedpoint.QONNX_ROUNDING`.
``Quant`` lives in the domain ``qonnx.custom_op.general``; the standard domain is at
opset :data:`OPSET`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pynq_codesign.fixedpoint import QONNX_ROUNDING, FixedFormat, acc_frac, bias_format
from pynq_codesign.wire import relu6_limit

from ..nn.model import ConvUnit, DetectionNet

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class _Graph:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._consts: dict[tuple, str] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def scalar(self, value: float) -> str:
        key = ("s", float(value))
        if key not in self._consts:
            self._consts[key] = self.const(f"const_{len(self._consts)}", np.float32(value))
        return self._consts[key]

    def quant(self, x: str, out: str, fmt: FixedFormat, rounding: str, narrow: bool) -> str:
        self.nodes.append(helper.make_node(
            "Quant", [x, self.scalar(fmt.scale), self.scalar(0.0), self.scalar(fmt.bits)],
            [out], domain=QONNX_DOMAIN, name=f"Quant_{out}",
            signed=1 if fmt.signed else 0, narrow=1 if narrow else 0,
            rounding_mode=rounding))
        return out


def build_quant_onnx(model: DetectionNet, graph_name: str | None = None) -> onnx.ModelProto:
    """The QONNX model of a folded, calibrated :class:`DetectionNet`."""
    if not model.folded:
        raise ValueError("fold the batch norms before exporting")
    design = model.design
    net, ov = design.network, design.overlay
    rq = QONNX_ROUNDING[ov.rounding_mode]
    g = _Graph()
    x = g.quant(INPUT_NAME, "x_in", net.input_format, rq, False)
    layers = net.layers
    for i, (u, lay, (fin, wf, fout)) in enumerate(zip(model.units, layers, net.formats())):
        last = i == len(layers) - 1
        y_name = OUTPUT_NAME if last else f"x{i}"
        if not isinstance(u, ConvUnit):
            g.nodes.append(helper.make_node("MaxPool", [x], [y_name], name=f"pool{i}",
                                            kernel_shape=[2, 2], strides=[2, 2]))
            x = y_name
            continue
        w = u.conv.weight.detach().cpu().double().numpy()
        b = u.conv.bias.detach().cpu().double().numpy()
        wq = g.quant(g.const(f"w{i}", w), f"w{i}_q", wf, rq, ov.narrow_range)
        bq = g.quant(g.const(f"b{i}", b), f"b{i}_q", bias_format(fin, wf, ov.bias_bits), rq,
                     False)
        k = 1 if lay.type == "pw" else 3
        g.nodes.append(helper.make_node(
            "Conv", [x, wq, bq], [f"acc{i}"], name=f"conv{i}_{lay.type}",
            kernel_shape=[k, k], strides=[lay.stride, lay.stride], pads=[k // 2] * 4,
            group=u.groups))
        a = f"acc{i}"
        if lay.activation == "relu":
            g.nodes.append(helper.make_node("Relu", [a], [f"act{i}"], name=f"relu{i}"))
            a = f"act{i}"
        elif lay.activation == "relu6":
            af = acc_frac(fin, wf)
            g.nodes.append(helper.make_node(
                "Clip", [a, g.scalar(0.0), g.scalar(relu6_limit(af) * 2.0 ** -af)],
                [f"act{i}"], name=f"relu6_{i}"))
            a = f"act{i}"
        x = g.quant(a, y_name, fout, rq, ov.narrow_range)
    c, h, w_ = net.input_channels, net.input_height, net.input_width
    oc, oh, ow = net.output_shape
    graph = helper.make_graph(
        g.nodes, graph_name or f"{design.name}_quant",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, c, h, w_])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, oc, oh, ow])],
        initializer=g.inits)
    m = helper.make_model(graph, producer_name="pynq-codesign",
                          opset_imports=[helper.make_opsetid("", OPSET),
                                         helper.make_opsetid(QONNX_DOMAIN, 1)])
    m.doc_string = (f"{design.name}: quantised with QONNX Quant nodes; input [1, {c}, {h}, {w_}] "
                    f"real values after pre-processing; output [1, {oc}, {oh}, {ow}] head values")
    onnx.checker.check_model(m)
    return m

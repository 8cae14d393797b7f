"""The float ONNX model: the trained network, batch norm folded, no quantisation.

Exported with torch's legacy (TorchScript) exporter (``dynamo=False``: torch 2.13's
default exporter needs ``onnxscript``), standard opset :data:`OPSET`. Input ``input``:
``[N, C, H, W]`` float32, the real-valued pre-processed image
(:func:`pynq_codesign.prepost.preprocess`, transposed to CHW); output ``output``:
``[N, anchors*5, GH, GW]``, the head's values (decode with
:func:`pynq_codesign.prepost.decode` after transposing one image to HWC). The batch axis
is dynamic.
"""
from __future__ import annotations

import copy
import io
import warnings

import onnx
import torch

from ..nn.model import DetectionNet
from .onnx_quant import INPUT_NAME, OUTPUT_NAME

OPSET = 13


def build_float_onnx(model: DetectionNet) -> onnx.ModelProto:
    """The float model of ``model`` (its float weights, no fake quantisation)."""
    m = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format).eval()
    m.quantized = False
    net = m.network
    x = torch.zeros(1, net.input_channels, net.input_height, net.input_width)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = (f"{model.design.name}: float model (batch norm folded); input NCHW "
                        "real values after pre-processing; output the head's values")
    onnx.checker.check_model(proto)
    return proto

"""Torch side of the networks: the builder (:mod:`.model`), fixed-point fake quantisation
(:mod:`.quant`) and the bounding-box back-end (:mod:`.head`)."""
from .head import LossWeights, best_boxes, decode_all, detection_loss
from .model import (DetectionNet, LayerRanges, build_model, calibrate_formats,
                    integer_params)
from .quant import fake_quant, round_mode, to_codes

__all__ = ["DetectionNet", "LayerRanges", "LossWeights", "best_boxes", "build_model",
           "calibrate_formats", "decode_all", "detection_loss", "fake_quant",
           "integer_params", "round_mode", "to_codes"]

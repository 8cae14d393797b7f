"""Data sets: the DAC-SDC layout loader, the built-in synthetic set, the IoU metric.

* :mod:`.dacsdc`  scan a DAC-SDC style folder, split it by sub-category, read inputs;
* :mod:`.synth`   ``codesign data synth``: the built-in UAV-like set in the same layout;
* :mod:`.metric`  the contest's score (mean IoU) and results in the contest's XML format.
"""
from .dacsdc import (CorruptImage, DataError, Dataset, Sample, Skipped, Split, iter_inputs,
                     load_dataset, load_inputs, read_image, split_by_subcategory)
from .metric import IoUReport, mean_iou, score_results, write_results

__all__ = ["CorruptImage", "DataError", "Dataset", "IoUReport", "Sample", "Skipped", "Split",
           "iter_inputs", "load_dataset", "load_inputs", "mean_iou", "read_image",
           "score_results", "split_by_subcategory", "write_results"]

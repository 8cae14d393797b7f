"""pynq-codesign: design a DNN and its FPGA accelerator together, deploy, measure, feed back.

This package is the board side: it imports nothing heavier than numpy (OpenCV and Flask
where a part needs them) and runs on a PYNQ-Z1 as well as on the host. The host side
(search, training, export, HLS generation) lives in ``host_search``.
"""
__version__ = "0.1.0"

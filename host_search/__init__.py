"""Host side of pynq-codesign: search, training, export, HLS generation, C simulation."""

"""Where the accelerator runs: a real board (pynq) or the simulated board (sim)."""

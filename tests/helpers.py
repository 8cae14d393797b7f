"""Small designs and packages with random integer weights, for tests of any part
(the generators themselves live in :mod:`pynq_codesign.randparams`)."""
from pynq_codesign import randparams
from pynq_codesign.design import Design, load_design


def tiny_design() -> Design:
    d = load_design("dnn-a").to_dict()
    d["network"]["input"].update(height=16, width=24)
    d["name"] = "tiny"
    return Design.from_dict(d)


def random_program(design, seed=0):
    """Small uniform weight codes (outputs are often all zero: use lively_program to
    detect a corrupted byte)."""
    return randparams.random_program(design, seed, style="uniform")


def lively_program(design, seed=0):
    """Weights scaled so that every layer's outputs stay busy."""
    return randparams.random_program(design, seed, style="lively")


def random_package(out, design: Design | None = None, seed: int = 0, n_golden: int = 1,
                   lively: bool = False):
    """A complete package (random weights, emulator golden vectors) written to ``out``."""
    return randparams.random_package(out, design or tiny_design(), seed, n_golden,
                                     style="lively" if lively else "uniform")

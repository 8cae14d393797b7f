"""pynq-codesign: one distribution with a board side and a host side.

    pip install .            the board side's core (numpy)
    pip install .[board]     on a PYNQ-Z1 with the v3.1 image (adds pynq; uses the image's cv2)
    pip install .[host]      on a host: torch (install torch==2.13.0 first), onnx, hls4ml, ...
    pip install .[ray]       candidate training as Ray tasks on a cluster
    pip install .[dev]       tests
"""
from setuptools import find_packages, setup

#: folders of non-Python sources installed as data inside host_search
SHIPPED = {"host_search.hls": "hls", "host_search.hls.sim": "hls/sim",
           "host_search.hls.tb": "hls/tb", "host_search.overlays": "overlays"}

setup(
    name="pynq-codesign",
    version="0.1.0",
    description="Co-design a DNN and its FPGA accelerator for PYNQ boards; deploy, measure, "
                "feed measurements back",
    python_requires=">=3.10",
    packages=find_packages(include=["pynq_codesign", "pynq_codesign.*", "host_search",
                                    "host_search.*"]) + list(SHIPPED),
    # The accelerator's C++ (hls/) and the boards' Vivado scripts (overlays/) live at the
    # top of the repository; a regular install puts them inside host_search/, where
    # host_search.hls_gen.shipped_dir finds them when there is no checkout around.
    package_dir=SHIPPED,
    package_data={"pynq_codesign": ["devices/*.json", "designs/*.json", "server/static/*"],
                  **{pkg: ["*.h", "*.cpp", "*.tcl"] for pkg in SHIPPED},
                  "host_search.overlays": ["*/*.tcl"]},
    include_package_data=True,
    install_requires=["numpy>=1.21"],
    extras_require={
        # the board service (Flask served by waitress) runs on the board too
        "board": ["pynq>=3.1,<4", "flask>=2.2", "waitress>=2.1"],
        "service": ["flask>=2.2", "waitress>=2.1"],
        "host": ["torch>=2.1", "onnx>=1.14,<1.23", "onnxruntime>=1.16", "qonnx>=0.4",
                 "hls4ml>=1.0", "scikit-image>=0.21", "tqdm",
                 "opencv-python-headless", "pynqmetadata", "matplotlib>=3.5",
                 "flask>=2.2", "waitress>=2.1"],
        # running candidate training as Ray tasks on a cluster (codesign search --executor ray)
        "ray": ["ray>=2.9"],
        "dev": ["pytest>=7", "hypothesis>=6", "nbclient>=0.7", "nbformat>=5", "ipykernel>=6",
                "selenium>=4"],
    },
    entry_points={"console_scripts": ["codesign=pynq_codesign.cli:main"]},
)

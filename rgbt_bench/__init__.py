"""rgbt-bench: benchmark and robustness evaluation harness for RGB-Thermal semantic segmentation."""

__version__ = "0.1.0"

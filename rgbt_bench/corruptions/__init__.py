"""Corruptions of RGB-T batches (modality dropout, masking, fog, night, thermal sensor faults) and the
YAML suites that group them for a sweep. See docs/corruptions.md for the parameter tables."""
from .corruption import CORRUPTION_VERSION, SEVERITIES, Corruption, Option
from .registry import CORRUPTIONS, apply_corruption, get_corruption
from .suite import SUITES_DIR, Suite, SuiteEntry, available_suites, load_suite

__all__ = [
    "CORRUPTIONS", "CORRUPTION_VERSION", "SEVERITIES", "SUITES_DIR", "Corruption", "Option", "Suite", "SuiteEntry",
    "apply_corruption", "available_suites", "get_corruption", "load_suite",
]

"""Unpickling published weight files that hold more than tensors, without running any of their code.

Two kinds of published files are not plain torch state dicts:
- PyTorch-Lightning checkpoints of detectron2 projects (CRM_RGBTSeg) pickle the training config, a
  yacs / detectron2 `CfgNode`, under "hyper_parameters". Its classes are not installed here and must not be
  imported: `config_stubs()` maps their names to `SkippedConfig`, so torch.load(weights_only=True) turns each
  node into a plain OrderedDict of its values (strings, numbers, lists) and runs nothing.
- Detectron2-converted ImageNet weights (Mask2Former tools/convert-pretrained-swin-model-to-d2.py,
  `swin_*_patch4_window7_224.pkl`) are plain pickles of {"model": {name: tensor or numpy array}, ...}, which
  torch.load cannot read. `RestrictedUnpickler` reads them with an allow-list of data constructors only:
  torch's tensor rebuild functions (a tensor's storage bytes are handed to `load_storage`, which reads them
  with weights_only), numpy array reconstruction, OrderedDict, set and the config stub. Any other global is
  refused before it is looked up, as the Python documentation's "Restricting Globals" recipe does.
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

CONFIG_CLASSES = ("detectron2.config.config.CfgNode", "fvcore.common.config.CfgNode", "yacs.config.CfgNode")


class SkippedConfig:
    """Stands in for a pickled config node: unpickling makes a plain OrderedDict of the node's items (its
    class and methods are never imported), and its bookkeeping attributes land on that dict's __dict__."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:
        return OrderedDict()


def config_stubs() -> list[tuple[type, str]]:
    """(stub, qualified name) pairs for torch.serialization.safe_globals."""
    return [(SkippedConfig, name) for name in CONFIG_CLASSES]


def _numpy_reconstruct() -> Callable[..., np.ndarray]:
    """numpy's array reconstructor, found from an array's own pickle recipe rather than a private module path
    (numpy 1 pickles name numpy.core.multiarray, numpy 2 numpy._core.multiarray)."""
    return np.ndarray((0,)).__reduce__()[0]


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only the data constructors listed in `allowed` (see module docstring)."""

    def __init__(self, fh: BinaryIO, load_storage: Callable[[bytes], Any]):
        super().__init__(fh, encoding="latin1")  # as detectron2 reads .pkl files (Python 2 numpy pickles)
        reconstruct = _numpy_reconstruct()
        self.allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): OrderedDict,
            ("builtins", "set"): set,
            ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): load_storage,
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            **{tuple(name.rsplit(".", 1)): SkippedConfig for name in CONFIG_CLASSES},
        }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name} is not allowed") from None


__all__ = ["CONFIG_CLASSES", "SkippedConfig", "config_stubs", "RestrictedUnpickler"]

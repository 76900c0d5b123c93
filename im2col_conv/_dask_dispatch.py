"""Whether a call received Dask arrays, and the module that computes on them.

The public functions check their array arguments here before anything else.
Dask is never imported by this module: an argument can only be a Dask array
if its class is already loaded, so the check is a dictionary look-up and
``import im2col_conv`` costs nothing more without Dask. The chunked
implementation (``im2col_conv._chunked``) sits above the public modules it
calls, so it is loaded by name, on the first Dask call.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["chunked", "is_dask"]


def is_dask(*values: object) -> bool:
    """True when any of ``values`` is a ``dask.array.Array``."""
    core = sys.modules.get("dask.array.core")
    if core is None:
        return False
    array_type = core.Array
    return any(isinstance(value, array_type) for value in values)


def chunked() -> ModuleType:
    """The module computing convolutions and pooling chunk by chunk on Dask arrays."""
    return importlib.import_module("im2col_conv._chunked")

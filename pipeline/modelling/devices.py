"""The device the model runs on, from a params value: ``grizal.devices.resolve_device`` with its errors as the
pipeline's one-line user errors."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipeline.common import UserError

if TYPE_CHECKING:
    import torch


def torch_device(name: str | None, where: str | os.PathLike | None = "params.yaml") -> torch.device:
    from grizal.devices import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as err:
        raise UserError(where, str(err)) from None

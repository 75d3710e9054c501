"""The train stage's checkpoint files, written and read in this one place.

``model.pt`` holds the trained model and what evaluation and ``grizal localize`` need with it (configs, T,
the encoder attributes and feature statistics of the training features, and ``trained_on``: the data set, protocol
and split it was trained on, which ``grizal localize`` reports; older files lack it); ``checkpoint.pt`` holds the
training state to resume from after a kill. Both are ``torch.save`` files of plain values (dicts, lists,
tuples, strings, numbers) and tensors, read back with ``torch.load(weights_only=True)``: a file holding
anything else (a pickled object, e.g. one made to run a command when it is unpickled) is refused before any
of its code can run. Whatever is not a checkpoint of the expected kind is a ``UserError``
``<file>: not a grizal checkpoint: <what it is>``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.common import UserError, atomic_write_bytes

if TYPE_CHECKING:
    import torch

MODEL_KEYS = ("model", "model_config", "loss_config", "train_config", "T", "seen_classes", "encoders", "digest",
              "feature_stats")
RESUME_KEYS = ("digest", "epoch", "history", "model", "optimizer", "scheduler", "torch_rng")
NOT_A_CHECKPOINT = "not a grizal checkpoint"


def save_model(path: Path, state: dict[str, Any]) -> None:
    _save(path, state, MODEL_KEYS)


def save_resume(path: Path, state: dict[str, Any]) -> None:
    _save(path, state, RESUME_KEYS)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a ``model.pt`` (in eval mode, on ``device``) and the file's other entries."""
    from grizal.model import ConfigError, build_model

    if not Path(path).is_file():
        raise UserError(path, "checkpoint not found (run the train stage first)")
    state = _read(path, MODEL_KEYS, other_kind=(RESUME_KEYS, "a training resume state (checkpoint.pt), not a "
                                                             "trained model; pass the train stage's model.pt"))
    try:
        model = build_model(state["model_config"])
        model.load_state_dict(state["model"])
    except (ConfigError, RuntimeError, TypeError, ValueError, KeyError, AttributeError) as err:
        raise UserError(path, f"{NOT_A_CHECKPOINT}: its weights do not fit its model_config "
                              f"({_first_line(err)})") from None
    return model.to(device).eval(), state


def load_resume(path: Path) -> dict[str, Any]:
    """The training state of a ``checkpoint.pt``; a ``UserError`` when the file is anything else."""
    return _read(path, RESUME_KEYS, other_kind=(("feature_stats", "encoders"),
                                                "a trained model (model.pt), not a training resume state"))


def _save(path: Path, state: dict[str, Any], keys: tuple[str, ...]) -> None:
    import torch

    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(f"a checkpoint needs {missing}")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path, keys: tuple[str, ...], other_kind: tuple[tuple[str, ...], str]) -> dict[str, Any]:
    """Load without executing anything from the file, then check it has the entries of its kind."""
    import warnings
    import zipfile

    import torch

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UserError(path, f"{NOT_A_CHECKPOINT}: an empty file")
        if not zipfile.is_zipfile(path):
            raise UserError(path, f"{NOT_A_CHECKPOINT}: not a PyTorch save file (those are zip archives)")
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("/data.pkl") for name in archive.namelist()):
                raise UserError(path, f"{NOT_A_CHECKPOINT}: a zip archive but not a PyTorch save file "
                                      "(no data.pkl)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, zipfile.BadZipFile) as err:
        raise UserError(path, f"cannot read ({getattr(err, 'strerror', None) or err})") from None
    except UserError:
        raise
    except Exception as err:  # anything torch cannot read as plain values and tensors is not ours
        raise UserError(path, f"{NOT_A_CHECKPOINT}: {_unreadable(err)}") from None
    if not isinstance(state, dict):
        kind = "a tensor" if isinstance(state, torch.Tensor) else f"a {type(state).__name__}"
        raise UserError(path, f"{NOT_A_CHECKPOINT}: it holds {kind}, not a dict of weights and settings")
    other_keys, other_name = other_kind
    missing = [key for key in keys if key not in state]
    if missing and all(key in state for key in other_keys):
        raise UserError(path, f"{NOT_A_CHECKPOINT}: {other_name}")
    if missing:
        raise UserError(path, f"{NOT_A_CHECKPOINT}: no {missing[0]!r} entry")
    weights = state["model"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise UserError(path, f"{NOT_A_CHECKPOINT}: its 'model' entry is not a dict of tensors")
    return state


def _unreadable(err: Exception) -> str:
    message = str(err)
    if message.startswith("Weights only load failed"):
        detail = [line for line in message.splitlines()[1:] if line.strip() and "documentation" not in line]
        reason = f" ({detail[0].strip()[:200]})" if detail else ""
        return f"it holds objects other than tensors and plain values, refused without running them{reason}"
    return f"a zip archive but not a PyTorch save file ({type(err).__name__}: {_first_line(err)})"


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__

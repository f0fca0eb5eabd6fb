"""The model artifact: TorchScript export, safe loading with checks, and the model card.

A model file is only ever opened with ``torch.jit.load`` (a TorchScript archive holds no
pickled Python code to run) after checking that it is a zip archive with TorchScript's
layout; checkpoints use ``torch.load(weights_only=True)``. A bundled model must match the
SHA256 in its card; every model must pass a shape self-check: N x 1 x H x W -> N x 1 x 2H x 2W.

Each bundled model also ships as a plain state dict (``<name>.pth``, its SHA256 in the card's
``state_dict`` entry), loaded with ``torch.load(weights_only=True)`` into the Lib's own network
built from the card's config. TorchScript stays the exchange format while torch has it; newer
torch deprecates ``torch.jit``, and where ``torch.jit.load`` is gone the bundled models load
from their state dicts (Slicer's PyTorch extension installs the newest torch).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import torch

from ..errors import UserInputError
from ..resources import bundled_card_of, bundled_model_card_path, bundled_model_path, bundled_second_level_path
from .network import NetworkConfig, build_network

STATE_DICT_FORMAT = "torch.save of the network's state_dict, float32 CPU tensors; torch.load(weights_only=True)"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_torchscript(state_dict: dict, network: NetworkConfig, path: Path) -> None:
    """Script a network with the given weights and save it (float32, CPU)."""
    model = build_network(network)
    model.load_state_dict(state_dict)
    scripted = torch.jit.script(model.eval())
    temporary = path.with_suffix(".tmp")
    scripted.save(str(temporary))
    temporary.replace(path)


def _check_torchscript_archive(path: Path) -> None:
    """Refuse anything that is not a TorchScript zip before torch opens it."""
    if not path.is_file():
        raise UserInputError(f"model {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise UserInputError(f"model {path} is not a TorchScript archive (.pt saved with torch.jit.save)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    has_code = any("/code/" in name for name in names)  # torch.save checkpoints have none
    has_data = any(name.endswith("/data.pkl") for name in names)
    if not (has_code and has_data):
        raise UserInputError(f"model {path} is a zip but not a TorchScript archive (no code/ folder)")


def check_shapes(model: torch.jit.ScriptModule) -> None:
    """The docs/design.md contract: N x 1 x H x W float32 -> N x 1 x 2H x 2W, finite."""
    probe = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        output = model(probe)
    if tuple(output.shape) != (2, 1, 24, 20) or not torch.isfinite(output).all():
        raise UserInputError(f"model maps 2x1x12x10 to {tuple(output.shape)}; an x2 model must give 2x1x24x20")


def read_model_card(path: Path | None = None) -> dict:
    return json.loads((path or bundled_model_card_path()).read_text())


def torchscript_available() -> bool:
    """Whether this torch can load TorchScript (``torch.jit.load``; deprecated in newer torch)."""
    return callable(getattr(getattr(torch, "jit", None), "load", None))


def network_config_of(card: dict) -> NetworkConfig:
    """The architecture a bundled model was trained with (its card's training config)."""
    return NetworkConfig(**card["training"]["config"]["network"])


def export_state_dict(model_path: Path) -> dict:
    """Write a bundled TorchScript model's weights beside it as ``<name>.pth``; returns the card's
    ``state_dict`` entry (file, SHA256, format) for the caller to store in the card."""
    weights_path = Path(model_path).with_suffix(".pth")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in
             torch.jit.load(str(model_path), map_location="cpu").state_dict().items()}
    temporary = weights_path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(weights_path)
    return {"file": weights_path.name, "sha256": sha256_of(weights_path), "format": STATE_DICT_FORMAT}


def _load_state_dict_model(model_path: Path, card_path: Path) -> torch.nn.Module:
    card = read_model_card(card_path)
    entry = card.get("state_dict")
    if entry is None:
        raise UserInputError(f"this PyTorch ({torch.__version__}) cannot load TorchScript, and bundled model "
                             f"{model_path.name} has no state dict; install a PyTorch with torch.jit")
    weights_path = model_path.with_name(entry["file"])
    if not weights_path.is_file() or sha256_of(weights_path) != entry["sha256"]:
        raise UserInputError(f"bundled weights {weights_path} are missing or do not match the SHA256 in the "
                             "model card; reinstall")
    model = build_network(network_config_of(card))
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model


def _load_torchscript(path: Path, card_path: Path | None) -> torch.nn.Module | None:
    """The TorchScript model; None for a bundled model this torch cannot load (then its state dict serves).

    An archive scripted by a newer torch may call operators an older torch lacks (torch 2.8 cannot
    load the SRCNN scripted by torch 2.13: ``aten::_upsample_lanczos2d_aa``).
    """
    _check_torchscript_archive(path)
    if card_path is not None and sha256_of(path) != read_model_card(card_path)["sha256"]:
        raise UserInputError(f"bundled model {path} does not match the SHA256 in its model card; reinstall")
    if not torchscript_available():
        if card_path is not None:
            return None
        raise UserInputError(f"this PyTorch ({torch.__version__}) cannot load TorchScript (torch.jit) models "
                             f"such as {path}; use a PyTorch that has torch.jit, or the bundled model")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as error:
        if card_path is not None:
            return None
        raise UserInputError(f"model {path} could not be loaded as TorchScript: {error}") from error


def load_model(path: Path | None = None) -> torch.nn.Module:
    """Load a bundled model (SHA256-checked against its card; None: the MRI model) or a user's
    TorchScript model, on CPU. A bundled model loads as TorchScript while this torch can load
    it, else from its state dict into the Lib's network."""
    path = Path(path) if path is not None else bundled_model_path()
    card = bundled_card_of(path)
    model = _load_torchscript(path, card)
    if model is None:
        model = _load_state_dict_model(path, card)
    model.eval()
    check_shapes(model)
    return model


def model_identity(path: Path | str | None, consistency: str = "kspace", scale: int = 2) -> dict:
    """Which model file ran (None: the bundled one for ``consistency``): name, path, bundled or
    not, and its SHA256; at ``scale`` 4 with the bundled model, ``second_level`` says the same of the
    cascade's bundled second level (a given model runs both levels)."""
    model_path = Path(path) if path is not None else bundled_model_path(consistency)
    identity = _file_identity(model_path)
    if scale == 4 and path is None:
        identity["second_level"] = _file_identity(bundled_second_level_path(consistency))
    return identity


def _file_identity(model_path: Path) -> dict:
    card = bundled_card_of(model_path)
    return {"name": read_model_card(card)["name"] if card else model_path.stem, "path": str(model_path),
            "bundled": card is not None, "sha256": sha256_of(model_path) if model_path.is_file() else None}

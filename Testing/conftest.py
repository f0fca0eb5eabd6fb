"""Shared fixtures. Names start with ``mrml_`` (MRML adapter tests) to avoid clashes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def mrml_scene():
    """A fresh slicer-core scene with a subject hierarchy, cleared after the test."""
    import slicer

    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    yield scene
    scene.Clear(True)


@pytest.fixture(scope="session")
def mrml_tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained RRLSRN (depth 1, 8 channels) as TorchScript: fast, still a real x2 network."""
    import torch
    from RRLSRNSuperResLib.model.artifact import export_torchscript
    from RRLSRNSuperResLib.model.network import RRLSRN, NetworkConfig

    torch.manual_seed(0)
    config = NetworkConfig(depth=1, channels=8)
    path = tmp_path_factory.mktemp("models") / "tiny_rrlsrn_x2.pt"
    export_torchscript(RRLSRN(config).state_dict(), config, path)
    return path

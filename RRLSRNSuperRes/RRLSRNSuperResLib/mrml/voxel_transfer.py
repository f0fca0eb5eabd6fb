"""Hand a numpy result to a volume node without copying it.

``slicer.util.updateVolumeFromArray`` allocates the node's scalars and copies the array into
them: for a moment the result exists twice (13 GB instead of 6.7 GB for a 1024 x 1024 x 400
input). :func:`adopt_voxels` lets the node's image data use the array's memory instead.

Why this is safe: ``vtk.util.numpy_support.numpy_to_vtk(..., deep=False)`` points a VTK array
at the numpy buffer, telling VTK not to free it, and keeps the numpy array alive only as an
attribute of the VTK array's *Python wrapper*; VTK may drop that wrapper while the C++ array
lives on in the image data (it usually keeps it as a "ghost", but nothing promises that). So
the numpy array is kept here, in ``_ADOPTED``, until the VTK array's ``DeleteEvent`` (its C++
destructor): the buffer outlives every VTK user of it, and is released with the last one.
The array is made C-contiguous first (numpy [k, j, i] order then has i fastest, VTK's point
order); a non-contiguous array is copied once, which ``updateVolumeFromArray`` would do too.
VTK treats the memory as its own: when a filter resizes the array, VTK reallocates and copies
(user-supplied memory is never reallocated in place or freed by VTK).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import numpy_to_vtk

_ADOPTED: dict[int, np.ndarray] = {}
_KEYS = itertools.count()


def adopted_count() -> int:
    """How many numpy buffers VTK arrays still use (tests check that they are released)."""
    return len(_ADOPTED)


def adopt_voxels(volume_node: Any, voxels_kji: np.ndarray) -> None:
    """Make ``voxels_kji`` (3D, numpy KJI) the node's voxels, sharing its memory; the caller must
    not write to the array afterwards except through the node (``arrayFromVolume``)."""
    voxels = np.ascontiguousarray(voxels_kji)
    if voxels.ndim != 3:
        raise ValueError(f"a scalar volume's voxels are 3D (KJI), not {voxels.shape}")
    flat = voxels.reshape(-1)
    scalars = numpy_to_vtk(flat, deep=False)
    key = next(_KEYS)
    _ADOPTED[key] = flat
    scalars.AddObserver(vtk.vtkCommand.DeleteEvent, lambda caller, event: _ADOPTED.pop(key, None))
    image = volume_node.GetImageData()
    if image is None:
        image = vtk.vtkImageData()
        volume_node.SetAndObserveImageData(image)
    image.SetDimensions(voxels.shape[::-1])
    image.GetPointData().SetScalars(scalars)
    # The notifications slicer.util.updateVolumeFromArray sends after writing voxels.
    volume_node.StorableModified()
    volume_node.Modified()
    volume_node.InvokeEvent(slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent, volume_node)

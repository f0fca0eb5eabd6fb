"""``rrlsrn superres`` end to end: exact x2 grid on disk, content in place, and bad input handled."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from RRLSRNSuperResLib.cli.main import main
from test_geometry import random_direction


def write_image(path: Path, voxels: np.ndarray, spacing, direction=None, origin=(0.0, 0.0, 0.0),
                vector: bool = False) -> Path:
    image = sitk.GetImageFromArray(voxels, isVector=vector)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in np.ravel(direction)))
    sitk.WriteImage(image, str(path))
    return path


def blob_volume(size_ijk, centre_ijk, sigma_ijk, background: float = 100.0) -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in size_ijk[::-1]), indexing="ij")
    r2 = sum(((grid - c) / s) ** 2 for grid, c, s in zip((i, j, k), centre_ijk, sigma_ijk))
    return (background + 800.0 * np.exp(-0.5 * r2)).astype(np.float32)


def physical_centroid(image: sitk.Image, background: float) -> np.ndarray:
    voxels = sitk.GetArrayFromImage(image).astype(float) - background
    weights = np.clip(voxels, 0, None)
    k, j, i = np.nonzero(weights > 0.05 * weights.max())
    w = weights[k, j, i]
    points = np.array([image.TransformContinuousIndexToPhysicalPoint((float(a), float(b), float(c)))
                       for a, b, c in zip(i, j, k)])
    return (points * w[:, None]).sum(axis=0) / w.sum()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("thick_axis", [0, 1, 2])
def test_superres_writes_the_exact_x2_grid_and_content_stays_in_place(tmp_path, thick_axis):
    rng = np.random.default_rng(thick_axis)
    size = [28, 32, 36]
    size[thick_axis] = 6
    spacing = [0.9, 1.1, 1.0]
    spacing[thick_axis] = 3.5
    direction = random_direction(rng)
    centre = [11.3, 17.6, 14.2]
    centre[thick_axis] = 2.7
    sigma = [2.5, 3.0, 2.0]
    sigma[thick_axis] = 1.2
    # Acquisition noise fills the band up to Nyquist, as in a stack the scanner did not interpolate.
    voxels = blob_volume(size, centre, sigma) + rng.normal(0.0, 4.0, size[::-1]).astype(np.float32)
    source = write_image(tmp_path / "stack.nii.gz", voxels, spacing, direction, origin=(-12.5, 40.25, 7.0))
    output = tmp_path / "stack_x2.nii.gz"

    assert main(["superres", str(source), str(output)]) == 0

    low, high = sitk.ReadImage(str(source)), sitk.ReadImage(str(output))
    inplane = [a for a in range(3) if a != thick_axis]
    expected_size = [n * (2 if a in inplane else 1) for a, n in enumerate(size)]
    assert list(high.GetSize()) == expected_size
    np.testing.assert_allclose(high.GetSpacing(), [s / (2 if a in inplane else 1) for a, s in enumerate(spacing)],
                               rtol=1e-6)
    np.testing.assert_allclose(high.GetDirection(), low.GetDirection(), atol=1e-6)
    # Output voxel 0 is centred a quarter of an input voxel before input voxel 0 on upsampled axes.
    quarter = [-0.25 if a in inplane else 0.0 for a in range(3)]
    np.testing.assert_allclose(high.GetOrigin(), low.TransformContinuousIndexToPhysicalPoint(quarter), atol=1e-4)
    shift = np.linalg.norm(physical_centroid(high, 100.0) - physical_centroid(low, 100.0))
    assert shift < 0.15 * min(high.GetSpacing())


@pytest.mark.parametrize(("dtype", "low", "high"), [(np.uint8, 0, 255), (np.int16, -1024, 2000)])
def test_integer_and_negative_inputs_work_and_can_keep_their_type(tmp_path, dtype, low, high):
    rng = np.random.default_rng(1)
    voxels = rng.integers(low, high, size=(3, 24, 20)).astype(dtype)
    source = write_image(tmp_path / "in.nrrd", voxels, (1.0, 1.0, 3.0))
    output = tmp_path / "out.nrrd"
    assert main(["superres", str(source), str(output), "--output-type", "input"]) == 0
    result = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
    assert result.dtype == dtype and result.shape == (3, 48, 40)
    assert result.min() >= np.iinfo(dtype).min and result.max() <= np.iinfo(dtype).max
    # Values stay in the input's range give or take the overshoot of sharpening.
    assert np.percentile(result, 50) == pytest.approx(np.percentile(voxels, 50), abs=0.2 * (high - low))


def test_constant_volume_stays_constant(tmp_path):
    source = write_image(tmp_path / "c.nii.gz", np.full((4, 16, 16), 42.0, np.float32), (1, 1, 3))
    output = tmp_path / "o.nii.gz"
    assert main(["superres", str(source), str(output)]) == 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(output))), 42.0)


def test_single_2d_slice_is_upsampled_in_plane(tmp_path):
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((30, 26)).astype(np.float32))
    image.SetSpacing((0.7, 0.7))
    sitk.WriteImage(image, str(tmp_path / "slice.nii.gz"))
    assert main(["superres", str(tmp_path / "slice.nii.gz"), str(tmp_path / "o.nii.gz")]) == 0
    result = sitk.ReadImage(str(tmp_path / "o.nii.gz"))
    assert result.GetSize()[:2] == (52, 60)
    np.testing.assert_allclose(result.GetSpacing()[:2], (0.35, 0.35))


def test_vector_image_is_super_resolved_per_component(tmp_path):
    rng = np.random.default_rng(2)
    voxels = rng.random((3, 16, 18, 2)).astype(np.float32)
    voxels[..., 1] *= 100
    source = write_image(tmp_path / "v.nrrd", voxels, (1, 1, 2.5), vector=True)
    assert main(["superres", str(source), str(tmp_path / "o.nrrd")]) == 0
    result = sitk.ReadImage(str(tmp_path / "o.nrrd"))
    assert result.GetNumberOfComponentsPerPixel() == 2 and result.GetSize() == (36, 32, 3)
    array = sitk.GetArrayFromImage(result)
    assert array[..., 1].mean() == pytest.approx(100 * array[..., 0].mean(), rel=0.1)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def _nifti_with_nan(tmp_path: Path) -> bytes:
    """A float NIfTI with one NaN voxel, patched in the raw bytes (SimpleITK would write 0)."""
    path = write_image(tmp_path / "finite.nii", np.ones((3, 8, 8), np.float32), (1, 1, 3))
    data = bytearray(path.read_bytes())
    path.unlink()
    offset = int(np.frombuffer(bytes(data[108:112]), "<f4")[0])
    index = offset + 4 * ((1 * 8 + 2) * 8 + 3)
    data[index: index + 4] = np.float32(np.nan).tobytes()
    return bytes(data)


def _bad_inputs(tmp_path: Path) -> dict:
    """name -> (arguments, files that must not change); every case must fail cleanly."""
    good = write_image(tmp_path / "good.nii.gz", np.ones((3, 8, 8), np.float32), (1, 1, 3))
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    text = tmp_path / "notes.nii"
    text.write_text("this is not an image\n")
    truncated = tmp_path / "truncated.nii.gz"
    big = write_image(tmp_path / "big.nii.gz", np.random.default_rng(0).random((6, 64, 64)).astype(np.float32),
                      (1, 1, 3))
    truncated.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    nan_voxels = np.ones((3, 8, 8), np.float32)
    nan_voxels[1, 2, 3] = np.nan
    nan = write_image(tmp_path / "nan.nrrd", nan_voxels, (1, 1, 3))
    nan_nifti = tmp_path / "nan.nii"
    nan_nifti.write_bytes(_nifti_with_nan(tmp_path))
    four_d = tmp_path / "4d.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 3, 4, 5), np.float32), isVector=False), str(four_d))
    pickled = tmp_path / "evil.pt"
    pickled.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(tmp_path / "marker.txt")))
    out = str(tmp_path / "out.nii.gz")
    return {
        "missing": ([str(tmp_path / "missing.nii.gz"), out], []),
        "empty": ([str(empty), out], [empty]),
        "not an image": ([str(text), out], [text]),
        "truncated gzip": ([str(truncated), out], [truncated]),
        "NaN voxels": ([str(nan), out], [nan]),
        "NaN voxels in NIfTI": ([str(nan_nifti), out], [nan_nifti]),
        "4D": ([str(four_d), out], [four_d]),
        "missing output folder": ([str(good), str(tmp_path / "nowhere" / "out.nii.gz")], [good]),
        "output is the input": ([str(good), str(good)], [good]),
        "model is a pickle": ([str(good), out, "--model", str(pickled)], [good, pickled]),
        "model is not a file": ([str(good), out, "--model", str(tmp_path / "none.pt")], [good]),
    }


def test_bad_inputs_give_one_error_line_exit_2_and_leave_nothing(tmp_path, capsys):
    for name, (arguments, untouched) in _bad_inputs(tmp_path).items():
        before = {path: sha(path) for path in untouched}
        listing = sorted(p.name for p in tmp_path.iterdir())
        assert main(["superres", *arguments]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (name, err)
        assert "Traceback" not in err[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, f"{name}: a file was left behind"
        assert {path: sha(path) for path in untouched} == before, f"{name}: an input changed"
    assert not (tmp_path / "marker.txt").exists(), "the pickled model ran code"


def test_nan_voxels_can_be_replaced_on_request(tmp_path):
    source = tmp_path / "nan.nii"
    source.write_bytes(_nifti_with_nan(tmp_path))
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--replace-nonfinite", "0"]) == 0
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "o.nii.gz")))).all()


def test_truncated_gzip_check_reads_whole_files(tmp_path):
    from RRLSRNSuperResLib.errors import UserInputError
    from RRLSRNSuperResLib.io.volumes import read_volume

    path = tmp_path / "x.nii.gz"
    write_image(path, np.arange(600, dtype=np.float32).reshape(6, 10, 10), (1, 1, 1))
    assert read_volume(path).voxels.shape == (6, 10, 10)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw)[:-9])
    with pytest.raises(UserInputError, match="truncated"):
        read_volume(path)


@pytest.mark.parametrize("thick_axis", [0, 2])
def test_superres_scale_4_writes_the_exact_x4_grid_consistent_with_the_input(tmp_path, thick_axis):
    """x4 by two x2 levels: spacing / 4 in-plane, origin moved by -3/8 of the old spacing through an
    oblique direction, field of view and content in place, the input's k-space band kept."""
    from RRLSRNSuperResLib.imaging.degrade import downsample_slices

    rng = np.random.default_rng(40 + thick_axis)
    size, spacing, centre, sigma = [20, 24, 22], [0.9, 1.1, 1.0], [8.3, 11.6, 10.2], [2.5, 3.0, 2.0]
    size[thick_axis], spacing[thick_axis], centre[thick_axis], sigma[thick_axis] = 4, 3.5, 1.7, 1.2
    voxels = blob_volume(size, centre, sigma) + rng.normal(0.0, 4.0, size[::-1]).astype(np.float32)
    source = write_image(tmp_path / "stack.nii.gz", voxels, spacing, random_direction(rng), origin=(-12.5, 40.25, 7.0))
    output = tmp_path / "stack_x4.nii.gz"

    assert main(["superres", str(source), str(output), "--scale", "4", "--views", "1"]) == 0

    low, high = sitk.ReadImage(str(source)), sitk.ReadImage(str(output))
    inplane = [a for a in range(3) if a != thick_axis]
    assert list(high.GetSize()) == [n * (4 if a in inplane else 1) for a, n in enumerate(size)]
    np.testing.assert_allclose(high.GetSpacing(), [s / (4 if a in inplane else 1) for a, s in enumerate(spacing)],
                               rtol=1e-6)
    np.testing.assert_allclose(high.GetDirection(), low.GetDirection(), atol=1e-6)
    three_eighths = [-0.375 if a in inplane else 0.0 for a in range(3)]
    np.testing.assert_allclose(high.GetOrigin(), low.TransformContinuousIndexToPhysicalPoint(three_eighths), atol=1e-4)
    last = [float(n - 1) for n in size]  # input voxel n's centre is output voxel 4n + 3/2 in-plane
    np.testing.assert_allclose(high.TransformContinuousIndexToPhysicalPoint(
        [4 * v + 1.5 if a in inplane else v for a, v in enumerate(last)]),
        low.TransformContinuousIndexToPhysicalPoint(last), atol=1e-4)
    shift = np.linalg.norm(physical_centroid(high, 100.0) - physical_centroid(low, 100.0))
    assert shift < 0.15 * min(low.GetSpacing())
    through = 2 - thick_axis
    measured = np.moveaxis(voxels, through, 0)
    x4 = np.moveaxis(sitk.GetArrayFromImage(high), through, 0)
    np.testing.assert_allclose(downsample_slices(x4, "kspace", 4), measured, atol=1e-3 * np.ptp(voxels))


@pytest.mark.parametrize("scale", [2, 4])
def test_brain_mask_restricts_extracts_and_is_written_on_the_output_grid(tmp_path, scale):
    size, spacing = (30, 34, 5), (1.0, 1.2, 3.0)
    voxels = blob_volume(size, (14.0, 16.0, 2.0), (3.0, 3.0, 1.0))
    source = write_image(tmp_path / "s.nii.gz", voxels, spacing, random_direction(np.random.default_rng(7)))
    mask = np.zeros(voxels.shape, np.uint8)
    mask[1:4, 10:22, 9:19] = 1
    mask_path = write_image(tmp_path / "m.nii.gz", mask, spacing, sitk.ReadImage(str(source)).GetDirection())
    out, mask_x2 = tmp_path / "o.nii.gz", tmp_path / "m2.nii.gz"
    assert main(["superres", str(source), str(out), "--mask", str(mask_path), "--extract-brain",
                 "--mask-output", str(mask_x2), "--scale", str(scale)]) == 0
    result, upsampled_mask = sitk.ReadImage(str(out)), sitk.ReadImage(str(mask_x2))
    assert upsampled_mask.GetSize() == result.GetSize() == (30 * scale, 34 * scale, 5)
    np.testing.assert_allclose(upsampled_mask.GetOrigin(), result.GetOrigin())
    array, inside = sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(upsampled_mask) > 0
    assert inside.sum() == scale ** 2 * mask.sum()
    assert (array[~inside] == 0).all() and array[inside].mean() > 100
    np.testing.assert_allclose(physical_centroid(upsampled_mask, 0.0),
                               physical_centroid(sitk.ReadImage(str(mask_path)), 0.0), atol=1e-6)


def test_mask_options_need_a_mask(tmp_path, capsys):
    source = write_image(tmp_path / "s.nii.gz", np.ones((2, 8, 8), np.float32), (1, 1, 3))
    assert main(["superres", str(source), str(tmp_path / "o.nii.gz"), "--extract-brain"]) == 2
    assert "need --mask" in capsys.readouterr().err


def test_coarse_square_pixels_over_thinner_slices_are_upsampled_in_their_plane(tmp_path, capsys):
    """A 1.17 x 1.17 x 2.0 mm stack at half resolution: 2.34 x 2.34 mm pixels, 2.0 mm slices."""
    size = (20, 24, 8)
    source = write_image(tmp_path / "half.nii.gz", blob_volume(size, (9.5, 11.0, 3.5), (3.0, 3.0, 1.5)),
                         (2.34, 2.34, 2.0), random_direction(np.random.default_rng(5)), origin=(3.0, -7.0, 11.0))
    output = tmp_path / "half_x2.nii.gz"
    assert main(["superres", str(source), str(output)]) == 0
    high = sitk.ReadImage(str(output))
    assert high.GetSize() == (40, 48, 8)
    np.testing.assert_allclose(high.GetSpacing(), (1.17, 1.17, 2.0), rtol=1e-6)
    assert "slicing along k" in capsys.readouterr().out


def _with_nifti_slice_dim(path: Path, slice_dim: int) -> Path:
    """Set ``dim_info``'s slice_dim (1-based IJK axis) of an uncompressed NIfTI-1 file."""
    raw = bytearray(path.read_bytes())
    raw[39] = slice_dim << 4
    path.write_bytes(bytes(raw))
    return path


def test_the_slice_axis_a_nifti_header_declares_wins_over_spacing(tmp_path, capsys):
    # Isotropic voxels would be sliced along k; the header says the slices were taken along j.
    source = _with_nifti_slice_dim(write_image(tmp_path / "iso.nii", blob_volume((16, 10, 12), (7.5, 4.5, 5.5),
                                                                                 (2.5, 2.0, 2.0)), (1.0, 1.0, 1.0)), 2)
    from RRLSRNSuperResLib.io.volumes import read_volume

    assert read_volume(source).header_slice_axis == 1
    assert main(["superres", str(source), str(tmp_path / "iso_x2.nii.gz")]) == 0
    assert sitk.ReadImage(str(tmp_path / "iso_x2.nii.gz")).GetSize() == (32, 10, 24)
    assert "slice axis the NIfTI header (dim_info)" in capsys.readouterr().out
    # --plane still forces the choice, and a file that declares nothing is sliced by its spacing.
    assert main(["superres", str(source), str(tmp_path / "forced.nii.gz"), "--plane", "k"]) == 0
    assert sitk.ReadImage(str(tmp_path / "forced.nii.gz")).GetSize() == (32, 20, 12)
    assert read_volume(_with_nifti_slice_dim(source, 0)).header_slice_axis is None


def test_consistency_and_views_options_reach_the_engine(tmp_path):
    """Default: the output's central k-space is the input's; ``--consistency none --views 1`` is the bare network."""
    from RRLSRNSuperResLib.engine.options import EngineOptions
    from RRLSRNSuperResLib.engine.volume import superresolve
    from RRLSRNSuperResLib.imaging.degrade import downsample_slices

    rng = np.random.default_rng(5)
    voxels = blob_volume([30, 26, 4], [14.0, 12.0, 1.5], [4.0, 3.0, 1.0]) + rng.normal(0, 4, (4, 26, 30))
    source = write_image(tmp_path / "stack.nii.gz", voxels.astype(np.float32), [1.0, 1.0, 3.0])
    default, bare = tmp_path / "default.nii.gz", tmp_path / "bare.nii.gz"
    assert main(["superres", str(source), str(default), "--output-type", "float32"]) == 0
    assert main(["superres", str(source), str(bare), "--output-type", "float32", "--consistency", "none",
                 "--views", "1"]) == 0
    measured = sitk.GetArrayFromImage(sitk.ReadImage(str(source)))
    default_x2 = sitk.GetArrayFromImage(sitk.ReadImage(str(default)))
    bare_x2 = sitk.GetArrayFromImage(sitk.ReadImage(str(bare)))
    np.testing.assert_allclose(downsample_slices(default_x2, "kspace"), measured, atol=1e-3)
    network_only = superresolve(measured, (1.0, 1.0, 3.0), EngineOptions(consistency="none", views=1)).voxels
    np.testing.assert_allclose(bare_x2, network_only, atol=1e-4)
    assert np.abs(downsample_slices(bare_x2, "kspace") - measured).max() > 0.1


"""Atomic output files: an interrupt at any point of a write leaves the target as it was and no temporary."""

import os
import stat

import pytest
from RRLSRNSuperResLib.io.atomic_files import replace_atomically, write_text


def _interrupted_after_creating(temporary: str) -> None:
    """A writer stopped by Ctrl-C the moment its file exists (where ``mkstemp`` used to leave one)."""
    open(temporary, "wb").close()
    raise KeyboardInterrupt


def test_an_interrupt_once_the_temporary_exists_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.nii.gz"
    target.write_text("finished earlier")
    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, _interrupted_after_creating)
    assert [path.name for path in tmp_path.iterdir()] == ["out.nii.gz"]
    assert target.read_text() == "finished earlier"


def test_the_temporary_lies_beside_the_target_hidden_with_the_whole_extension(tmp_path):
    seen = []
    replace_atomically(tmp_path / "out.nii.gz", lambda temporary: (seen.append(temporary),
                                                                    open(temporary, "w").close()))
    name = os.path.basename(seen[0])
    assert os.path.dirname(seen[0]) == str(tmp_path)
    assert name.startswith(".out.nii.gz.") and name.endswith(".nii.gz"), name
    assert [path.name for path in tmp_path.iterdir()] == ["out.nii.gz"]


def test_a_written_file_gets_the_usual_permissions_not_owner_only(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644

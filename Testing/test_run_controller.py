"""The Slicer panel's run state machine (``mrml.run_controller``), without Qt or a scene."""

from __future__ import annotations

import pytest
from RRLSRNSuperResLib.mrml.run_controller import ButtonLook, Click, RunController, RunPhase


def test_clicks_start_then_are_ignored_during_start_up_then_cancel_once():
    controller = RunController()
    assert controller.click() is Click.START and controller.phase is RunPhase.STARTING
    assert controller.click() is Click.IGNORE, "a double click's second click is no Cancel"
    assert controller.keep_going
    controller.on_progress()
    assert controller.click() is Click.CANCEL and not controller.keep_going
    assert controller.click() is Click.IGNORE and controller.phase is RunPhase.CANCELLING
    controller.finish()
    assert controller.click() is Click.START and controller.keep_going, "a new run forgets the old Cancel"


def test_the_button_says_what_a_click_does():
    controller = RunController()
    assert controller.button("Select an input volume.") == ButtonLook("Super-resolve", "Select an input volume.", False)
    assert controller.button() == ButtonLook("Super-resolve", RunController.IDLE_TOOLTIP, True)
    controller.click()
    assert controller.button("ignored while running").text == "Cancel" and controller.button().enabled
    controller.on_progress()
    controller.click()
    assert controller.button() == ButtonLook("Cancelling...", "Stopping after the current batch; nothing is changed.",
                                             False)


def test_a_scene_close_cancels_only_a_running_run():
    controller = RunController()
    controller.request_cancel()
    assert controller.phase is RunPhase.IDLE and controller.keep_going
    controller.click()
    controller.request_cancel()
    assert not controller.keep_going


def test_an_x4_run_is_estimated_with_its_16_times_larger_output_and_both_levels():
    import numpy as np
    from RRLSRNSuperResLib.mrml.run_estimate import GIB, PlannedRun, estimate_run

    def estimate(scale):
        return estimate_run(PlannedRun((512, 512, 40), 2, np.dtype(np.int16), True, scale=scale, adapt_seconds=60.0),
                            True, 64 * GIB, cpu_count=2)

    x2, x4 = estimate(2), estimate(4)
    assert x4.output_size_ijk == (2048, 2048, 40)
    x2_voxels, x4_voxels = 1024 * 1024 * 40, 2048 * 2048 * 40
    # float32 x4 output + float32 x2 result of the first level + normalised input + the int16 cast
    assert x4.peak_bytes == 4 * x4_voxels + 4 * x2_voxels + 4 * 512 * 512 * 40 + 2 * x4_voxels
    assert x4.cpu_seconds == pytest.approx(5.2 * (x2_voxels + x4_voxels) / 1e6 + 60.0)
    assert x2.cpu_seconds == pytest.approx(5.2 * x2_voxels / 1e6 + 60.0)
    assert x4.needs_confirmation and not x2.needs_confirmation, "18 minutes at x4, under 5 at x2"


def test_a_large_run_is_estimated_and_needs_confirmation():
    """Issue 26 item 5: 512 x 512 x 300 int16 gives a 1024 x 1024 x 300 float32 result."""
    import numpy as np
    from RRLSRNSuperResLib.mrml.run_estimate import GIB, PlannedRun, estimate_run

    def estimate(available, cores=16, keep=False, on_cpu=True):
        return estimate_run(PlannedRun((512, 512, 300), 2, np.dtype(np.int16), keep), on_cpu, available,
                            cpu_count=cores)

    roomy = estimate(64 * GIB)
    assert roomy.output_size_ijk == (1024, 1024, 300)
    assert roomy.peak_bytes == 4 * 1024 * 1024 * 300 + 4 * 512 * 512 * 300  # float32 output + normalised input
    assert estimate(64 * GIB, keep=True).peak_bytes == roomy.peak_bytes + 2 * 1024 * 1024 * 300
    assert roomy.cpu_seconds == pytest.approx(5.2 * 314.5728 * 2 / 16)
    assert not roomy.needs_confirmation
    assert estimate(2 * GIB).needs_confirmation, "more than half the free memory"
    assert estimate(64 * GIB, cores=2).needs_confirmation, "27 minutes on 2 cores"
    assert not estimate(64 * GIB, cores=2, on_cpu=False).needs_confirmation
    assert estimate(None).needs_confirmation is False and estimate(None).available_bytes is None
    tight = estimate(1 * GIB)
    assert tight.message.startswith("The result will be 1024 x 1024 x 300 voxels and needs about 1.5 GB of memory "
                                    "(1.0 GB are free now).\nThat is more than the free memory")

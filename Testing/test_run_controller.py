"""The Slicer panel's run state machine (``mrml.run_controller``), without Qt or a scene."""

from __future__ import annotations

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

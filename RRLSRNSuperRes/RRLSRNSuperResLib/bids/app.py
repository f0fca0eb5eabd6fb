"""Run the participant level of the BIDS App: every stack once (or, with ``--reconstruct``, every session
once, all its stacks into one volume), resumable, in parallel, never half-written.

Each output is written atomically (image first, its sidecar last: a sidecar means a complete
output). A rerun skips a stack whose sidecar names the same input content (SHA256), model SHA256, options
and mask; a stack whose input was replaced is redone, and says so.
A session's reconstruction is skipped likewise when its sidecar names the same stacks' SHA256s (in order),
model, options and masks. A failing stack (or session) is logged and the others go on. ``jobs`` > 1
spreads stacks (or sessions) over processes with the cores shared out between them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Optional

from ..io.atomic_files import write_json, write_text
from ..pipeline.reconstruction import ReconstructionJob, reconstruct_files
from ..pipeline.stack import StackOptions, superresolve_file
from .dataset import Stack
from .derivatives import (
    MASKS_DATASET_KEY,
    bids_uri,
    dataset_description,
    dataset_readme,
    derivative_paths,
    find_mask,
    sidecar,
    versions,
)
from .sessions import Session, group_sessions, session_paths, sidecar_fields

LOGS_IGNORED = "logs/"  # the run logs are no BIDS files: the validator is told to pass over them


@dataclass(frozen=True)
class RunSettings:
    """What a run does to every stack: the derivatives folder, the options (the model among them), the
    masks' derivatives folder, whether finished outputs are redone, and the command line to record.
    ``reconstruction``: with ``--reconstruct``, the job every session runs (all but its files), else None."""

    output_dir: Path
    options: StackOptions
    mask_dir: Optional[Path] = None
    overwrite: bool = False
    command: tuple[str, ...] = ()
    reconstruction: Optional[ReconstructionJob] = None


@dataclass(frozen=True)
class Task:
    """One stack to process, with everything a worker process needs."""

    stack: Stack
    model: dict[str, str]  # the model as the sidecars name it (``sidecar_model``)
    settings: RunSettings


@dataclass(frozen=True)
class SessionTask:
    """One session to reconstruct from all its stacks, with everything a worker process needs."""

    session: Session
    model: dict[str, str]
    settings: RunSettings


def sidecar_model(model_path: Path | None, consistency: str, scale: int = 2) -> dict[str, Any]:
    """The model as the sidecars name it: Name, File (the bundled file's name, else its path) and SHA256;
    at x4 with the bundled model, SecondLevel names the cascade's second level the same way."""
    from ..model.artifact import model_identity

    identity = model_identity(model_path, consistency, scale)
    named = _sidecar_name(identity)
    if "second_level" in identity:
        named["SecondLevel"] = _sidecar_name(identity["second_level"])
    return named


def _sidecar_name(identity: dict[str, Any]) -> dict[str, Any]:
    file = Path(identity["path"]).name if identity["bundled"] else str(Path(identity["path"]).resolve())
    return {"Name": identity["name"], "File": file, "SHA256": identity["sha256"]}


def input_identity(path: Path) -> dict[str, Any]:
    """The input's content (size and SHA256): a replaced stack is redone even when its name is the same."""
    from ..model.artifact import sha256_of

    return {"Size": path.stat().st_size, "SHA256": sha256_of(path)}


def _previous_run(paths: dict[str, Path], expected: dict[str, Any]) -> Optional[str]:
    """"same" when a complete output names exactly ``expected``, "input changed" when only the input
    differs, None when there is no usable previous output or it was made otherwise."""
    if not (paths["image"].is_file() and paths["sidecar"].is_file()):
        return None
    try:
        recorded = json.loads(paths["sidecar"].read_text())["RRLSRN"]
    except (ValueError, KeyError, OSError):
        return None
    differing = {key for key, value in expected.items() if recorded.get(key) != value}
    return "same" if not differing else "input changed" if differing == {"Input"} else None


def _mask_of(settings: RunSettings, stack: Stack) -> tuple[Optional[Path], Optional[str]]:
    """The stack's brain mask from ``--mask-from-derivatives`` and its BIDS URI, or (None, None) without."""
    if settings.mask_dir is None:
        return None, None
    mask = find_mask(settings.mask_dir, stack)
    return mask, bids_uri(Path(mask).relative_to(settings.mask_dir).as_posix(), MASKS_DATASET_KEY)


def _ended(entry: dict[str, Any], started: float, status: str, **details: Any) -> dict[str, Any]:
    return {**entry, "status": status, "seconds": round(time.monotonic() - started, 3), **details}


def _failed(entry: dict[str, Any], started: float, error: Exception) -> dict[str, Any]:
    return _ended(entry, started, "failed", error=f"{type(error).__name__}: {error}",
                  traceback=traceback.format_exc())


def process_stack(task: Task) -> dict[str, Any]:
    """Super-resolve one stack into the derivatives (or skip it); a failure is returned, not raised."""
    started, settings = time.monotonic(), task.settings
    paths = derivative_paths(settings.output_dir, task.stack, settings.options.engine.scale)
    entry: dict[str, Any] = {"source": task.stack.relative, "output": str(paths["image"])}
    try:
        mask, mask_source = _mask_of(settings, task.stack)
        options, identity = settings.options.record(), input_identity(task.stack.path)
        previous = None if settings.overwrite else _previous_run(paths, {"Input": identity, "Model": task.model,
                                                                         "Options": options,
                                                                         "MaskSource": mask_source})
        if previous == "same":
            return _ended(entry, started, "skipped")
        paths["image"].parent.mkdir(parents=True, exist_ok=True)
        result = superresolve_file(task.stack.path, paths["image"], options=settings.options,
                                   mask=mask, mask_output=paths["mask"] if mask else None)
        record = sidecar(task.stack, input_identity=identity, model=task.model, options=options,
                         mask_source=mask_source,
                         result={"device": result.device, "precision": result.precision,
                                 "slice_axis": result.slice_axis,
                                 "spacing": result.geometry.spacing, "seconds": result.seconds,
                                 "detail_gain": round(result.detail_gain, 4)},
                         command=list(settings.command))
        write_json(paths["sidecar"], record)
        written = [str(paths["image"]), str(paths["sidecar"])] + ([str(paths["mask"])] if mask else [])
        notes = (["redone: the input changed since its output was made"] if previous else []) + result.notes
        return _ended(entry, started, "done", written=written, notes=notes)
    except Exception as error:  # noqa: BLE001 (one bad stack must not stop the cohort)
        return _failed(entry, started, error)


def reconstruction_record(settings: RunSettings) -> dict[str, Any]:
    """The options of a session's reconstruction as its sidecar stores them (JSON types: tuples are lists)."""
    job = settings.reconstruction
    return json.loads(json.dumps({**settings.options.record(), "superres": job.superres,
                                  "thickness_mm": job.thickness_mm,
                                  "reconstruction": dataclasses.asdict(job.reconstruction)}))


def process_session(task: SessionTask) -> dict[str, Any]:
    """Reconstruct one session from all its stacks into the derivatives (or skip it); a failure is returned."""
    started, settings, session = time.monotonic(), task.settings, task.session
    paths = session_paths(settings.output_dir, session)
    entry: dict[str, Any] = {"source": session.folder, "inputs": [stack.relative for stack in session.stacks],
                             "output": str(paths["image"])}
    try:
        masks = [_mask_of(settings, stack) for stack in session.stacks] if settings.mask_dir else []
        mask_sources = [source for _, source in masks]
        expected = {"Input": [input_identity(stack.path) for stack in session.stacks],
                    "Model": task.model if settings.reconstruction.superres else None,
                    "Options": reconstruction_record(settings), "MaskSources": mask_sources or None}
        previous = None if settings.overwrite else _previous_run(paths, expected)
        if previous == "same":
            return _ended(entry, started, "skipped")
        paths["image"].parent.mkdir(parents=True, exist_ok=True)
        job = dataclasses.replace(settings.reconstruction, stacks=tuple(stack.path for stack in session.stacks),
                                  output=paths["image"], masks=tuple(mask for mask, _ in masks),
                                  mask_output=paths["mask"],
                                  stack_labels=tuple(bids_uri(stack.relative) for stack in session.stacks),
                                  sidecar_fields=sidecar_fields(session, mask_sources))
        files = reconstruct_files(job, provenance={**expected, "Versions": versions(),
                                                   "Command": list(settings.command)})
        notes = ["redone: an input stack changed since its output was made"] if previous else []
        return _ended(entry, started, "done", written=[str(paths[key]) for key in ("image", "mask", "sidecar")],
                      notes=notes + files.notes)
    except Exception as error:  # noqa: BLE001 (one bad session must not stop the cohort)
        return _failed(entry, started, error)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _results(tasks: list, jobs: int, worker: Callable[[Any], dict[str, Any]]) -> Any:
    """Yield each task's result as it finishes: in this process, or in ``jobs`` worker processes."""
    if jobs <= 1:
        for task in tasks:
            yield worker(task)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn: workers start clean, with no thread pools inherited from this process.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(worker, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # running stacks end atomically; queued ones never start
            raise


def log_path(output_dir: Path) -> Path:
    """A log file name no other run writes, also when several machines share the dataset."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return output_dir / "logs" / f"rrlsrn-bids_{stamp}_{socket.gethostname()}_{os.getpid()}.json"


def write_dataset_files(bids_dir: Path, output_dir: Path, mask_dir: Path | None) -> None:
    """``dataset_description.json``, a README (unless the user wrote one) and ``.bidsignore`` for the logs."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "dataset_description.json", dataset_description(bids_dir, output_dir, mask_dir))
    if not (output_dir / "README.md").exists():
        write_text(output_dir / "README.md", dataset_readme())
    ignore = output_dir / ".bidsignore"
    if LOGS_IGNORED not in (ignore.read_text().splitlines() if ignore.exists() else []):
        write_text(ignore, (ignore.read_text() if ignore.exists() else "") + LOGS_IGNORED + "\n")


def run_participants(bids_dir: Path, stacks: list[Stack], settings: RunSettings, *, jobs: int,
                     report: Callable[[int, int, dict], None]) -> dict[str, Any]:
    """Process every stack, or reconstruct every session (``jobs`` at once), report each result, write the
    dataset files and the run's log (its ``stacks`` list has one entry per session with ``--reconstruct``)."""
    write_dataset_files(bids_dir, settings.output_dir, settings.mask_dir)
    engine = settings.options.engine
    model = sidecar_model(engine.model, engine.consistency, engine.scale)
    if settings.reconstruction is not None:
        tasks, worker = [SessionTask(session, model, settings) for session in group_sessions(stacks)], process_session
    else:
        tasks, worker = [Task(stack, model, settings) for stack in stacks], process_stack
    log = {"command": list(settings.command), "started": datetime.now(timezone.utc).isoformat(), "model": model,
           "stacks": [], "interrupted": False}
    path = log_path(settings.output_dir)
    path.parent.mkdir(exist_ok=True)
    try:
        for entry in _results(tasks, jobs, worker):
            log["stacks"].append(entry)
            report(len(log["stacks"]), len(tasks), entry)
    except KeyboardInterrupt:
        log["interrupted"] = True
        raise
    finally:
        log["finished"] = datetime.now(timezone.utc).isoformat()
        log["summary"] = {status: sum(entry["status"] == status for entry in log["stacks"])
                          for status in ("done", "skipped", "failed")}
        write_json(path, log)
    log["path"] = path
    return log

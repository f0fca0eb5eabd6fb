"""``rrlsrn train``: build or read a training pack, train, export the TorchScript model."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..model.network import ARCHITECTURES, NetworkConfig
from ..model.precision import PRECISIONS
from ..training.loop import TrainingConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument("--data-root", type=Path,
                         help="a folder holding the public volumes of the bundled model's training set under "
                              "fetal/, infant/ and adult/ (the README's 'Data and licenses' says where each "
                              "comes from): builds the bundled model's pack from it")
    sources.add_argument("--volumes", type=Path, nargs="+", metavar="VOLUME",
                         help="training volumes (one subject each; in-plane slices of their fine axes are used)")
    parser.add_argument("--val-volumes", type=Path, nargs="+", metavar="VOLUME", default=[],
                        help="with --volumes: validation volumes, of subjects not among the training ones")
    parser.add_argument("--pack", type=Path, required=True,
                        help="training pack (.npz): written from --data-root or --volumes when given, else read")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log, exported model")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--paper", action="store_true", help="the paper's recipe (SGD, lr 1e-5 halved every 50 epochs)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--patch", type=int, help="HR patch side in pixels")
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--warmup", type=int, dest="warmup_steps",
                        help="steps of linear learning-rate warm-up (use with --init)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=NetworkConfig.architecture,
                        help="rrlsrn (default), or srcnn: the report's small learned baseline")
    parser.add_argument("--depth", type=int, default=NetworkConfig.depth)
    parser.add_argument("--channels", type=int, default=NetworkConfig.channels)
    parser.add_argument("--init", type=Path, dest="initial_model", metavar="MODEL",
                        help="fine-tune from this TorchScript model (e.g. Resources/Models/rrlsrn_x2.pt)")
    parser.add_argument("--no-image-branch", action="store_true", help="ablation: fixed bilinear image branch")
    parser.add_argument("--gdl-weight", type=float, help="0 disables the gradient difference loss (ablation)")
    parser.add_argument("--kspace-fraction", type=float, help="share of patches degraded by ideal k-space truncation")
    parser.add_argument("--acquisition-fraction", type=float,
                        help="share of patches degraded by the MRI acquisition model (T2 blur along a random "
                             "phase-encoding axis, partial Fourier, noise); the rest is bicubic")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="auto (default: bf16 autocast where the CPU or GPU runs it natively), fp32, bf16, fp16")
    parser.add_argument("--consistent-output", action="store_true", default=None,
                        help="train and validate on the output made consistent with its LR (as rrlsrn superres "
                             "makes it), so the network learns only what the LR leaves open")
    parser.add_argument("--bare-loss-weight", type=float,
                        help="with --consistent-output: weight of the loss of the unprojected output (default 1; "
                             "0 lets the network drift from the LR, and then it is poor with --consistency none)")
    parser.add_argument("--scale", type=int, choices=(2, 4),
                        help="4: train the second level of the x4 cascade on the output of --first-level (default 2)")
    parser.add_argument("--first-level", type=Path, dest="first_level_model", metavar="MODEL",
                        help="with --scale 4: the frozen x2 model of the cascade's first level (e.g. "
                             "Resources/Models/rrlsrn_x2.pt for k-space LR, rrlsrn_x2_bicubic.pt for bicubic)")
    parser.add_argument("--first-level-detail-min", type=float,
                        help="with --scale 4: the first level keeps a random share in [this, 1] of its "
                             "out-of-band detail per patch, as the engine's detail gain does (default 1)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--time-limit", type=float, help="stop (resumably) after this many minutes")
    parser.add_argument("--validate-every", type=int, default=1000)


def config_from_arguments(args: argparse.Namespace) -> TrainingConfig:
    network = NetworkConfig(architecture=args.arch, depth=args.depth, channels=args.channels,
                            image_branch=not args.no_image_branch)
    overrides = {name: getattr(args, name) for name in
                 ("steps", "batch", "patch", "learning_rate", "gdl_weight", "kspace_fraction",
                  "acquisition_fraction", "seed", "precision", "warmup_steps", "consistent_output",
                  "bare_loss_weight", "scale", "first_level_detail_min")
                 if getattr(args, name) is not None}
    for name in ("initial_model", "first_level_model"):
        if getattr(args, name):
            overrides[name] = str(getattr(args, name))
    return TrainingConfig.paper(network=network, **overrides) if args.paper else TrainingConfig(network=network,
                                                                                                **overrides)


def _print_now(line: str) -> None:
    """A run lasts hours and its output is often a log file: show each record when it is made."""
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..engine.devices import select_device
    from ..errors import UserInputError
    from ..model.artifact import export_torchscript
    from ..training.data import build_default_pack, build_pack, read_pack
    from ..training.loop import load_checkpoint, train

    if args.val_volumes and not args.volumes:
        raise UserInputError("--val-volumes goes with --volumes")
    if args.data_root:
        build_default_pack(args.data_root, args.pack)
    elif args.volumes:
        if not args.val_volumes:
            raise UserInputError("give --val-volumes too: validation must use other subjects than training")
        # Each file is its own subject, named after the file.
        build_pack([(path, path.name.split(".")[0], "train") for path in args.volumes]
                   + [(path, path.name.split(".")[0], "val") for path in args.val_volumes], args.pack)
    elif not args.pack.is_file():
        raise UserInputError(f"pack {args.pack} does not exist; build it with --data-root or --volumes")
    volumes = read_pack(args.pack)
    device = select_device(args.device)
    config = config_from_arguments(args)
    started = time.monotonic()
    best = train(volumes, config, args.out, device, resume=args.resume,
                 time_limit_s=args.time_limit * 60 if args.time_limit else None,
                 validate_every=args.validate_every, log=_print_now)
    state = load_checkpoint(best)
    summary = {"best_step": state["step"], "history": state["history"], "config": state["config"].to_dict(),
               "device": str(device), "session_seconds": round(time.monotonic() - started, 1)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    role = "x2" if state["config"].scale == 2 else "x4_level2"
    exported = args.out / f"{state['config'].network.architecture}_{role}.pt"
    export_torchscript(state["model"], state["config"].network, exported)
    print(f"best checkpoint: step {state['step']}; exported {exported}")
    return 0

"""Train, prune, quantise and export: ``python -m train.prune``.

Example::

    python -m train.prune --dataset digits --tile 4x4 --method spatial-winograd \\
        --target-sparsity 0.7 --out W.npz --report R.json

writes weight file v2 (``W.npz``: the quantised convolution layers conv0, conv1, ... with their
requantisation, the pooling, flatten and linear head, the input shape and scale, the class
names) and a JSON report: accuracy dense / pruned / quantised (the last by
``golden.network.evaluate``, the figure ``python -m golden.network --weights W.npz --dataset
digits`` gives for the default ``--seed``),
Winograd-domain sparsity overall, per layer and per position, method, tile, wall time.
The summary goes to stdout, progress to stderr. Bad arguments print
``train.prune: error: <one line>`` on stderr and exit with status 2.

``--dataset fashion-mnist`` trains the VGG-nagadomi-style network of
:func:`train.models.fashion_model` on Fashion-MNIST (the Debian package
``dataset-fashion-mnist``, or ``--data-dir DIR``) with that dataset's preset
(:func:`train.settings.default_settings`); options given override the preset.
``--device cuda`` trains on the GPU.
"""

from __future__ import annotations

import os
import sys

from golden.cli import CliError, OneLineParser, check_output_path, run_main, write_json
from golden.options import tile_type

__all__ = ["main"]

PROG = "train.prune"


def _parser() -> OneLineParser:
    from golden.transforms import TILES

    from .data import DATASETS
    from golden.datasets import FASHION_MNIST_DIR, FASHION_MNIST_PACKAGE

    from .settings import DEVICES, METHODS, PruneSettings
    d = PruneSettings()
    p = OneLineParser(prog=PROG, description="Spatial-Winograd pruning with weight-file export.")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits (scikit-learn, bundled), fashion-mnist (Debian package "
                        f"{FASHION_MNIST_PACKAGE} or --data-dir) or cifar10 (needs --cifar-dir)")
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"Fashion-MNIST's IDX files (default: {FASHION_MNIST_DIR})")
    p.add_argument("--cifar-dir", help="local cifar-10-batches-py folder")
    p.add_argument("--limit", type=int, help="use at most N training and N test images")
    p.add_argument("--tile", type=tile_type, default=d.tile, metavar="|".join(TILES),
                   help="4x4 = F(2x2,3x3), 6x6 = F(4x4,3x3)")
    p.add_argument("--method", choices=METHODS, default=d.method)
    p.add_argument("--target-sparsity", type=float, default=d.target,
                   help="per-layer target sparsity in [0, 1)")
    p.add_argument("--out", required=True, help="weight file to write (.npz, format v2)")
    p.add_argument("--report", help="JSON report to write")
    p.add_argument("--seed", type=int, default=d.seed)
    preset = " (default: the dataset's preset)"
    p.add_argument("--dense-epochs", type=int, help="dense training epochs" + preset)
    p.add_argument("--prune-epochs", type=int, help="pruning + retraining epochs" + preset)
    p.add_argument("--stages", type=int, help="pruning stages" + preset)
    p.add_argument("--batch-size", type=int, help="minibatch size" + preset)
    p.add_argument("--lr", type=float, help="spatial-domain SGD learning rate" + preset)
    p.add_argument("--first-target", type=float,
                   help="largest target sparsity of the first convolution" + preset)
    p.add_argument("--winograd-lr", type=float, default=d.winograd_lr,
                   help="Winograd-domain learning rate (default: lr / max(I**2 * scaling))")
    p.add_argument("--step1-share", type=float, default=d.step1_share,
                   help="share of the target reached by step 1 (spatial-winograd; default: "
                        "0.8 for 4x4, 1.0 for 6x6)")
    shifts = p.add_mutually_exclusive_group()
    shifts.add_argument("--tap-shifts", dest="tap_shifts", action="store_true", default=None,
                        help="a power-of-two scale per Winograd position (weight file v2 "
                             "tap_shift; default: on for 6x6, off for 4x4)")
    shifts.add_argument("--no-tap-shifts", dest="tap_shifts", action="store_false")
    p.add_argument("--max-tap-shift", type=int, default=d.max_tap_shift, metavar="S",
                   help="largest span of a layer's tap shifts (the design's "
                        "hw.generate --max-tap-shift)")
    p.add_argument("--qat-epochs", type=int, default=d.qat_epochs, metavar="N",
                   help="epochs of quantisation-aware fine-tuning in the Winograd domain "
                        "(default: 6 for 6x6, 0 for 4x4)")
    p.add_argument("--qat-lr", type=float, default=d.qat_lr,
                   help="its Adam learning rate, in int8 weight steps per update")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch CPU threads (default 1: fastest for these small models, and "
                        "results are reproducible for a fixed thread count)")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where to train (default cpu; cuda runs are not bit-reproducible)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, 2 on bad input, 130 when interrupted)."""
    return run_main(PROG, lambda: _main(argv))


def _main(argv) -> int:
    try:
        import torch
    except ImportError:
        raise CliError("needs PyTorch; install the [train] extra (pip install torch==2.13.0 "
                       "scikit-learn)") from None
    args = _parser().parse_args(argv)

    from golden.weights import WeightFileError, save_weights

    from .data import DatasetError, load_dataset
    from .pipeline import run
    from .settings import default_settings, resolve_device

    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be a positive integer, not {args.limit}")
    if args.data_dir is not None and args.dataset != "fashion-mnist":
        raise CliError("--data-dir goes with --dataset fashion-mnist")
    if args.dataset == "cifar10" and args.cifar_dir is None:
        raise CliError("--dataset cifar10 needs --cifar-dir (a local cifar-10-batches-py "
                       "folder)")
    if args.threads < 1:
        raise CliError(f"--threads must be a positive integer, not {args.threads}")
    check_output_path(args.out, "--out", ".npz")
    if args.report is not None:
        check_output_path(args.report, "--report", ".json")
    given = {name: getattr(args, option) for name, option in (
        ("dense_epochs", "dense_epochs"), ("prune_epochs", "prune_epochs"),
        ("stages", "stages"), ("batch_size", "batch_size"), ("lr", "lr"),
        ("first_target", "first_target")) if getattr(args, option) is not None}
    try:
        settings = default_settings(
            args.dataset, tile=args.tile, method=args.method, target=args.target_sparsity,
            seed=args.seed, winograd_lr=args.winograd_lr, step1_share=args.step1_share,
            tap_shifts=args.tap_shifts, max_tap_shift=args.max_tap_shift,
            qat_epochs=args.qat_epochs, qat_lr=args.qat_lr, **given)
        resolve_device(args.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        data = load_dataset(args.dataset, seed=args.seed, cifar_dir=args.cifar_dir,
                            limit=args.limit, data_dir=args.data_dir)
    except DatasetError as exc:
        raise CliError(f"--dataset {args.dataset}: {exc}") from None
    torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    try:
        weights, report = run(args.dataset, data, settings, progress=not args.quiet,
                              device=args.device)
    except ValueError as exc:       # e.g. NaN weights after a learning rate that diverged
        raise CliError(f"training failed: {exc} (a learning rate too high makes training "
                       "diverge; try a lower --lr or --winograd-lr)") from None
    try:
        save_weights(args.out, weights)
    except (WeightFileError, OSError) as exc:
        raise CliError(f"--out {args.out}: cannot write ({exc})") from None
    report["weight_file"] = os.path.abspath(args.out)
    if args.report is not None:
        write_json(args.report, report)
    acc = report["accuracy"]
    tuned = acc.get("fine_tuned_int8_weights")
    tuned = "" if tuned is None else f" fine-tuned {tuned:.4f}"
    print(f"{args.method} {args.tile}: accuracy dense {acc['dense']:.4f} pruned "
          f"{acc['pruned']:.4f}{tuned} quantised {acc['quantised']:.4f}; Winograd-domain sparsity "
          f"{report['winograd_sparsity']['overall']:.4f}; {report['wall_time_s']:.1f} s; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

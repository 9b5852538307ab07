"""The tasks of an exploration: pure functions of JSON-able arguments returning JSON-able dicts,
run on the Dask workers.

* :func:`synthesise` generates and synthesises one design for one target (and places and routes
  it with ``pnr``): :func:`hw.synth.flow.run`'s report, with ``fit_estimate`` (the synthesised
  cells against the board's device, :func:`hw.synth.pnr.estimated_use`) when there is a board
  but no place and route. A tool failure is a result, ``{"error": ...}``, not an exception:
  a deterministic failure is not worth a retry.
* :func:`network_cycles` evaluates a whole network (weight file version 2) on one design with
  golden's exact cycle model, as ``sim.network`` reports it (``golden.report``): every conv as
  the channel-split passes of :func:`golden.passes.plan_passes`, one image, the loads the pass
  before does not hide included. A network the design cannot run is a result too,
  ``{"usable": False, "reason": ...}``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from golden.cli import CliError, one_line
from golden.config import AcceleratorConfig
from golden.cycles import utilisation
from golden.network import load_network
from golden.passes import compile_passes, plan_passes
from golden.report import overlap_loads, pass_record
from hw.boards import BOARDS
from hw.synth.flow import run as run_flow
from hw.synth.pnr import estimated_use
from hw.synth.tools import SynthError

__all__ = ["network_cycles", "network_figures", "synthesise", "weights_from_bytes"]

# Weight files a worker has read, by digest: every design point reuses the one read.
_NETWORKS: dict = {}


def synthesise(config: dict, target: str, work_dir: str, pnr: bool = False,
               sparsity: float = 0.74) -> dict:
    """Generate and synthesise ``config`` for ``target`` in ``work_dir`` [and place and route].

    Parameters
    ----------
    config : dict
        :meth:`AcceleratorConfig.to_dict` of the design.
    target : str
        A key of :data:`hw.synth.yosys.TARGETS`; ``pnr`` needs one of :data:`hw.boards.BOARDS`.
    work_dir : str
        The design's folder on the worker (Verilog, logs, ``report.json``, bitstream).
    pnr : bool
        Also place and route on the target's board.
    sparsity : float
        Sparsity of the flow's reference-layer throughput (``golden.throughput``).

    Returns
    -------
    dict
        The flow's report (module docstring), or ``{"error": <one line>}``.
    """
    design = AcceleratorConfig.from_dict(config)
    try:
        report = run_flow(design, target, work_dir, pnr=pnr, sparsity=sparsity, quiet=True)
    except (SynthError, CliError) as exc:
        return {"error": one_line(exc)}
    if not pnr and target in BOARDS:
        use = estimated_use(Path(work_dir) / "stat.json", BOARDS[target])
        report["fit_estimate"] = {
            "fits": all(u["used"] <= u["available"] for u in use.values()),
            "utilisation": use}
    return report


def weights_from_bytes(data: bytes):
    """The network of a weight file's bytes (validated by ``golden.network.load_network``,
    never unpickled), read once per process and digest."""
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _NETWORKS:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "weights.npz")
            with open(path, "wb") as f:
                f.write(data)
            _NETWORKS[digest] = load_network(path)
    return _NETWORKS[digest]


def network_figures(weights, config: AcceleratorConfig) -> dict:
    """One image of ``weights``'s network on ``config``, from golden's cycle model.

    Returns
    -------
    dict
        ``usable`` True, ``passes`` (conv passes), ``compute_cycles``, ``load_cycles``,
        ``exposed_load_cycles``, ``total_cycles`` (compute + exposed load: cycles per image),
        ``nonzero_macs``, ``dense_macs``, ``direct_macs`` (of the dense 3x3 convolutions),
        ``n_pe``, ``multipliers`` (``config.multipliers``), ``utilisation_end_to_end``
        (``golden.cycles.utilisation(nonzero_macs, n_pe, total_cycles)``, as ``sim.network``)
        and ``layers`` (conv name -> passes and total cycles); or ``usable`` False and
        ``reason`` when a layer cannot run on ``config``.
    """
    network, records, layers = weights.network, [], {}
    shape = network.input_shape
    for index, op in enumerate(network.ops):
        if op.kind == "conv":
            layer = weights[op.name]
            if (layer.m, layer.r) != (config.m, config.r):
                return {"usable": False,
                        "reason": f"layer '{layer.name}' is F({layer.m},{layer.r}) but the "
                                  f"design's tile {config.tile} is F({config.m},{config.r})"}
            try:
                programs = compile_passes(plan_passes(config, layer), shape[1], shape[2])
            except ValueError as exc:
                return {"usable": False, "reason": one_line(exc)}
            records += [pass_record(p, layer=op.name) for p in programs]
            layers[op.name] = {"passes": len(programs)}
        shape = network.shapes[index]
    records = overlap_loads(records, config)
    for name, entry in layers.items():
        entry["total_cycles"] = sum(r.cycles + r.exposed_load for r in records
                                    if r.layer == name)
    compute = sum(r.cycles for r in records)
    exposed = sum(r.exposed_load for r in records)
    nonzero = sum(r.nonzero_macs for r in records)
    return {"usable": True, "passes": len(records), "compute_cycles": compute,
            "load_cycles": sum(r.load_cycles for r in records),
            "exposed_load_cycles": exposed, "total_cycles": compute + exposed,
            "nonzero_macs": nonzero, "dense_macs": sum(r.dense_macs for r in records),
            "direct_macs": sum(r.direct_macs for r in records), "n_pe": config.n_pe,
            "multipliers": config.multipliers,
            "utilisation_end_to_end": utilisation(nonzero, config.n_pe, compute + exposed),
            "layers": layers}


def network_cycles(config: dict, weights: bytes) -> dict:
    """:func:`network_figures` of the weight file ``weights`` (its bytes) on ``config`` (its
    :meth:`AcceleratorConfig.to_dict`)."""
    return network_figures(weights_from_bytes(weights), AcceleratorConfig.from_dict(config))

"""Spatial-Winograd pruning in PyTorch and export of the whole network as weight file v2
(optional extra ``[train]``).

Modules: :mod:`train.winograd` (Winograd-domain layer on golden's matrices), :mod:`train.pruning`
(masks), :mod:`train.models`, :mod:`train.data`, :mod:`train.quantize` (int8 + export),
:mod:`train.pipeline` (methods and reports); import of your own model: :mod:`train.netimport`
(the float network, BatchNorm folding, quantisation into weight file v2), :mod:`train.torch_graph`
and :mod:`train.state_dict` (PyTorch), :mod:`train.onnx_graph` (ONNX / QONNX). CLIs
``python -m train.prune``, ``python -m train.import_state_dict`` and ``python -m train.import_onnx``
(see docs/import.md).
"""

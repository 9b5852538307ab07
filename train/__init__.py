"""Spatial-Winograd pruning in PyTorch and export of the whole network as weight file v2
(optional extra ``[train]``).

Modules: :mod:`train.winograd` (Winograd-domain layer on golden's matrices), :mod:`train.pruning`
(masks), :mod:`train.models`, :mod:`train.data`, :mod:`train.quantize` (int8 + export),
:mod:`train.pipeline` (methods and reports), :mod:`train.state_dict` (import of user weights);
CLIs ``python -m train.prune`` and ``python -m train.import_state_dict``.
"""

"""Golden model of the sparse-Winograd accelerator: exact transforms, bit-growth analysis,
float and bit-exact integer layer models, compressed weight encoding, weight file formats v1 and
v2; the whole-network model is :mod:`golden.network` (also ``python -m golden.network``).

Importable with NumPy alone (no simulator, no Amaranth).
"""

from .config import DEFAULT, PRESETS, SMALL, AcceleratorConfig, parse_array
from .cycles import CycleReport, layer_cycles
from .throughput import Throughput, layer_throughput, reference_throughput
from .program import LayerProgram, compile_layer, expected_output, patch_words, unpack_results
from .schedule import Schedule, schedule_layer
from .conv import (TileGrid, assemble_tiles, direct_conv2d, extract_patches, tap_left_shifts,
                   tile_grid, winograd_conv2d_float, winograd_conv2d_int, winograd_tiles_int,
                   winograd_tiles_int64)
from .encoding import SparseWeights, decode, encode, pack_entries, unpack_entries
from .layout import ArraySpec, Field, StructSpec, pack_array, unpack_array
from .netfile import LinearWeights, Network, NetworkOp
from .protocol import entry_spec, index_bits
from .quant import quantize_multiplier, requantize
from .transforms import (CANONICAL_POINTS, TILES, WinogradTransform, parse_tile, tile_transform,
                         winograd_transform)
from .weights import (LayerWeights, WeightFile, WeightFileError, load_weights, save_weights,
                      validate_arrays)
from .widths import (DatapathWidths, bits_for_range, check_range, datapath_widths, signed_range,
                     value_range)

__all__ = [
    "CycleReport", "LayerProgram", "Schedule", "Throughput", "compile_layer", "expected_output",
    "layer_cycles", "layer_throughput", "patch_words", "reference_throughput", "schedule_layer",
    "unpack_results",
    "AcceleratorConfig", "ArraySpec", "CANONICAL_POINTS", "DEFAULT", "DatapathWidths", "Field",
    "LayerWeights", "LinearWeights", "Network", "NetworkOp", "PRESETS", "SMALL", "SparseWeights",
    "StructSpec", "TILES", "TileGrid", "WeightFile", "WeightFileError", "WinogradTransform",
    "assemble_tiles", "bits_for_range", "datapath_widths", "decode", "direct_conv2d", "encode",
    "entry_spec", "extract_patches", "load_weights", "pack_array", "pack_entries", "parse_array",
    "parse_tile", "quantize_multiplier", "requantize", "save_weights", "signed_range",
    "tile_grid", "tile_transform", "unpack_array", "unpack_entries", "validate_arrays",
    "winograd_conv2d_float", "winograd_conv2d_int", "winograd_tiles_int", "winograd_transform",
    "check_range", "index_bits", "value_range", "tap_left_shifts", "winograd_tiles_int64",
]

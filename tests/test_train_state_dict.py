"""Import of PyTorch state_dicts (incl. torch.nn.utils.prune masks) into weight file v1."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import prune as torch_prune  # noqa: E402

from golden.weights import load_weights  # noqa: E402
from train.import_state_dict import main as import_main  # noqa: E402
from train.quantize import quantize_layer  # noqa: E402
from train.state_dict import StateDictError, import_module, import_state_dict  # noqa: E402
from train.winograd import spatial_to_winograd  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 4, 3, padding=1, bias=False))
    torch_prune.l1_unstructured(net[0], "weight", amount=0.6)
    return net


@pytest.mark.parametrize("tile", ["4x4", "6x6"])
def test_import_applies_prune_masks_and_matches_quantize_layer(tile):
    net = _net()
    state = net.state_dict()
    assert "0.weight_orig" in state and "0.weight_mask" in state
    layers = import_state_dict(state, tile, input_scale=0.01)
    assert [layer.name for layer in layers] == ["0", "2"]
    masked = (state["0.weight_orig"] * state["0.weight_mask"]).double()
    U = spatial_to_winograd(masked, tile).numpy()
    ref = quantize_layer("0", U, tile, 1, state["0.bias"].double().numpy(), 0.01)
    np.testing.assert_array_equal(layers[0].U, ref.U)
    np.testing.assert_array_equal(layers[0].bias, ref.bias)
    np.testing.assert_array_equal(layers[0].scale, ref.scale)
    # Taps pruned in whole groups give exact Winograd-domain zeros, nothing else does.
    assert np.all(layers[0].U[U == 0] == 0)
    assert layers[1].bias is None


def test_import_module_reads_padding_and_equals_state_dict_import():
    net = _net()
    by_module = import_module(net, "4x4", input_scale=0.01)
    by_state = import_state_dict(net.state_dict(), "4x4", input_scale=0.01)
    for a, b in zip(by_module, by_state):
        np.testing.assert_array_equal(a.U, b.U)
        assert a.padding == b.padding == 1


@pytest.mark.parametrize("conv, message", [
    (nn.Conv2d(2, 2, 3, stride=2), "stride must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 3, dilation=2), "dilation must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 3, groups=2), "groups must be 1, not 2"),
    (nn.Conv2d(2, 2, 5, padding=2), "kernel must be 3x3, not 5x5"),
    (nn.Conv2d(2, 2, 3, padding=3), "padding must be an integer in [0, 2], not 3"),
])
def test_import_module_refuses_what_the_accelerator_cannot_run(conv, message):
    with pytest.raises(StateDictError) as info:
        import_module(nn.Sequential(conv), "4x4", input_scale=0.1)
    assert message in str(info.value) and "layer '0'" in str(info.value)


def test_import_state_dict_errors_name_layer_and_key():
    state = _net().state_dict()
    with pytest.raises(StateDictError, match="layer '0', key '0.bias': a bias needs"):
        import_state_dict(state, "4x4")
    del state["0.weight_mask"]
    with pytest.raises(StateDictError, match="key '0.weight_mask': missing"):
        import_state_dict(state, "4x4", input_scale=0.1)
    with pytest.raises(StateDictError, match="layer 'nope', key 'nope.weight': missing"):
        import_state_dict(state, "4x4", layers=["nope"])
    with pytest.raises(StateDictError, match="layer '2': stride must be 1, not 2"):
        import_state_dict(_net().state_dict(), "4x4", input_scale=0.1, stride={"2": 2})
    with pytest.raises(StateDictError, match="holds no 4-D convolution weights"):
        import_state_dict({"fc.weight": torch.zeros(3, 4)}, "4x4")
    bad = {"c.weight": torch.full((1, 1, 3, 3), float("nan"))}
    with pytest.raises(StateDictError, match="key 'c.weight': contains NaN or Inf"):
        import_state_dict(bad, "4x4")


def test_cli_writes_a_valid_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": _net().state_dict()}, path)
    out = tmp_path / "w.npz"
    assert import_main([str(path), "--tile", "6x6", "--out", str(out), "--input-scale", "0.01",
                        "--padding", "2=0"]) == 0
    wf = load_weights(out)
    assert wf.names == ["0", "2"] and wf["2"].padding == 0 and wf["0"].padding == 1


@pytest.mark.parametrize("extra, message", [
    (["--tile", "5x5"], "argument --tile: tile must be one of 4x4, 6x6, not '5x5'"),
    (["--tile", "4x4", "--out", "w.txt"], "--out w.txt: must end in .npz"),
    (["--tile", "4x4", "--input-scale", "x=abc"], "--input-scale 'x=abc': 'abc' is not a valid"),
    (["--tile", "4x4", "--input-scale", "zz=0.1"], "no layer named 'zz'"),
    (["--tile", "4x4"], "key '0.bias': a bias needs the layer's input scale"),
])
def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys, extra, message):
    path = tmp_path / "model.pt"
    torch.save(_net().state_dict(), path)
    assert import_main([str(path), "--out", str(tmp_path / "w.npz"), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("train.import_state_dict: error: ")
    assert message in err and err.count("\n") == 1


def test_cli_refuses_non_tensor_files_without_traceback(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a torch file")
    proc = subprocess.run([sys.executable, "-m", "train.import_state_dict", str(path), "--tile",
                           "4x4", "--out", str(tmp_path / "w.npz")], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a torch.save file" in proc.stderr
    assert proc.stderr.startswith(f"train.import_state_dict: error: {path}: ")
    assert "Traceback" not in proc.stderr

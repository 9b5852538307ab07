"""Import of PyTorch state_dicts (incl. torch.nn.utils.prune masks): the conv layers alone (v1)
and the command line (whole networks: tests/test_train_import.py)."""

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


def test_import_state_dict_refuses_what_it_cannot_place():
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).state_dict()
    with pytest.raises(StateDictError, match="layer '1', key '1.running_mean': holds BatchNorm "
                       "statistics, which a conv-by-conv import would drop"):
        import_state_dict(bn, "4x4", input_scale=0.1)
    head = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)).state_dict()
    with pytest.raises(StateDictError, match="key '2.weight': holds a Linear layer"):
        import_state_dict(head, "4x4", input_scale=0.1)
    # Naming the layers states that only those convolutions are wanted.
    assert [layer.name for layer in import_state_dict(head, "4x4", ["0"], input_scale=0.1)] == ["0"]


@pytest.mark.parametrize("conv, message", [
    (nn.Conv2d(2, 2, 3, stride=2), "stride must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 3, dilation=2), "dilation must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 3, groups=2), "groups must be 1, not 2"),
    (nn.Conv2d(2, 2, 5, padding=2), "kernel must be 3x3, not 5x5"),
    (nn.Conv2d(2, 2, 3, padding=3), "padding must be an integer in [0, 2], not 3"),
])
def test_import_module_refuses_what_the_accelerator_cannot_run(conv, message):
    with pytest.raises(StateDictError) as info:
        import_module(nn.Sequential(conv), "4x4", np.zeros((1, 2, 8, 8)))
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
        import_state_dict({"fc.bias": torch.zeros(3)}, "4x4")
    bad = {"c.weight": torch.full((1, 1, 3, 3), float("nan"))}
    with pytest.raises(StateDictError, match="key 'c.weight': contains NaN or Inf"):
        import_state_dict(bad, "4x4")


def _cli_files(tmp_path, state):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": state}, path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((4, 3, 6, 6)))
    return path, ["--calibration", str(tmp_path / "x.npy"), "--out", str(tmp_path / "w.npz")]


def test_cli_layout_applies_prune_masks_and_paddings(tmp_path):
    net = _net()
    state = {**net.state_dict(), **nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
             .state_dict(prefix="fc.")}
    state = {k.replace("fc.1.", "fc."): v for k, v in state.items()}
    path, files = _cli_files(tmp_path, state)
    assert import_main([str(path), "--tile", "6x6", "--layout", "0,relu,2,flatten,fc",
                        "--padding", "2=0", *files]) == 0
    wf = load_weights(tmp_path / "w.npz")
    assert wf.names == ["0", "2"] and wf["2"].padding == 0 and wf["0"].padding == 1
    assert wf["0"].relu and not wf["2"].relu and wf.network.input_shape == (3, 6, 6)
    masked = (state["0.weight_orig"] * state["0.weight_mask"]).double()
    U = spatial_to_winograd(masked, "6x6").numpy()
    assert np.all(wf["0"].U[U == 0] == 0)


@pytest.mark.parametrize("extra, message", [
    (["--tile", "5x5", "--layout", "0"],
     "argument --tile: tile must be one of 4x4, 6x6, not '5x5'"),
    (["--tile", "4x4", "--layout", "0", "--padding", "x=abc"],
     "--padding 'x=abc': 'abc' is not a valid"),
    (["--tile", "4x4", "--layout", "0", "--padding", "zz=1"], "no layer 'zz' in --layout"),
    (["--tile", "4x4", "--padding", "1", "--model", "m:f"], "--padding goes with --layout"),
    (["--tile", "4x4", "--stride", "2"], "unrecognized arguments: --stride"),
])
def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys, extra, message):
    path, files = _cli_files(tmp_path, _net().state_dict())
    assert import_main([str(path), *files, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("train.import_state_dict: error: ")
    assert message in err and err.count("\n") == 1


def test_cli_refuses_non_tensor_files_without_traceback(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a torch file")
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 4, 4)))
    proc = subprocess.run([sys.executable, "-m", "train.import_state_dict", str(path), "--tile",
                           "4x4", "--layout", "0", "--calibration", str(tmp_path / "x.npy"),
                           "--out", str(tmp_path / "w.npz")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a torch.save file" in proc.stderr
    assert proc.stderr.startswith(f"train.import_state_dict: error: {path}: ")
    assert "Traceback" not in proc.stderr

"""Whole-model import: PyTorch (torch.fx, named layouts) and ONNX / QONNX into weight file v2."""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from golden.network import evaluate  # noqa: E402
from golden.weights import load_weights  # noqa: E402
from train.import_onnx import import_onnx  # noqa: E402
from train.import_onnx import main as onnx_main  # noqa: E402
from train.import_state_dict import main as state_dict_main  # noqa: E402
from train.netimport import ModelImportError, fold_batchnorm, measure_errors  # noqa: E402
from train.state_dict import import_layout, import_module  # noqa: E402
from train.torch_graph import module_ops  # noqa: E402

LAYOUT = "0,1,relu,3,4,relu,maxpool2,7,8,relu,maxpool2,flatten,12"


def vgg() -> nn.Sequential:
    """VGG-style: conv-BN-ReLU twice, pool, conv-BN-ReLU, pool, Linear head (3x8x8 input)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


@pytest.fixture(scope="module")
def trained():
    """The VGG trained briefly on 10 noisy prototypes (real BatchNorm statistics, decisive
    logits); calibration: 64 random images, test: 200 other random images."""
    torch.manual_seed(0)
    model = vgg()
    gen = torch.Generator().manual_seed(1)
    protos = torch.randn(10, 3, 8, 8, generator=gen)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(80):
        y = torch.randint(0, 10, (32,), generator=gen)
        x = protos[y] + 0.8 * torch.randn(32, 3, 8, 8, generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    rng = np.random.default_rng(2)
    calibration = rng.standard_normal((64, 3, 8, 8)).astype(np.float32)
    test = rng.standard_normal((200, 3, 8, 8)).astype(np.float32)
    return model, calibration, test


def _export(model, path, x, fold=False):
    """Legacy exporter: ``fold=False`` keeps BatchNormalization nodes (the file then holds the
    module's own tensors), ``fold=True`` lets the exporter fold them in float32."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.as_tensor(x[:1]),), str(path), dynamo=False,
                          do_constant_folding=fold, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    return path


def _ort_logits(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _same_file(a, b):
    a, b = a.arrays(), b.arrays()
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_vgg_import_agrees_with_pytorch_float_top1(trained):
    model, calibration, test = trained
    weights = import_module(model, "4x4", calibration)
    assert [str(op) for op in weights.network.ops] == [
        "conv:0", "conv:3", "maxpool2", "conv:7", "maxpool2", "flatten", "linear:12"]
    assert all(layer.relu for layer in weights.layers)
    with torch.no_grad():
        expected = model(torch.as_tensor(test)).argmax(1).numpy()
    logits, _ = evaluate(weights, test)
    agreement = np.mean(np.argmax(logits, axis=1) == expected)
    assert agreement >= 0.95, agreement
    errors, agree = measure_errors(weights, module_ops(model, "4x4"), test)
    assert agree == agreement
    assert [e.name for e in errors] == ["0", "3", "7"]
    assert all(0 < e.relative_rms < 0.05 for e in errors), errors


def test_batchnorm_is_folded_exactly_before_quantisation(trained):
    model, _, test = trained
    ops = module_ops(model, "4x4")
    conv, bn = model[0], model[1]
    w, b = fold_batchnorm(conv.weight.detach().double().numpy(),
                          conv.bias.detach().double().numpy(), bn.weight.detach(),
                          bn.bias.detach(), bn.running_mean, bn.running_var, bn.eps)
    np.testing.assert_array_equal(ops[0].weight, w)
    np.testing.assert_array_equal(ops[0].bias, b)
    with torch.no_grad():
        ref = copy.deepcopy(model[:2]).double()(torch.as_tensor(test).double()).numpy()
    y = nn.functional.conv2d(torch.as_tensor(test).double(), torch.as_tensor(w),
                             torch.as_tensor(b), padding=1).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9)


def test_onnx_import_is_the_same_file_and_agrees_with_onnxruntime(trained, tmp_path):
    model, calibration, test = trained
    by_module = import_module(model, "4x4", calibration)
    path = _export(model, tmp_path / "vgg.onnx", test)
    by_onnx, ops = import_onnx(path, "4x4", calibration)
    assert _same_file(by_module, by_onnx)
    logits, _ = evaluate(by_onnx, test)
    float_logits = _ort_logits(path, test)
    assert np.mean(np.argmax(logits, 1) == np.argmax(float_logits, 1)) >= 0.95
    errors, _ = measure_errors(by_onnx, ops, test)
    assert all(e.relative_rms < 0.05 for e in errors), errors


def test_onnx_with_exporter_folded_batchnorm_agrees_with_onnxruntime(trained, tmp_path):
    model, calibration, test = trained
    path = _export(model, tmp_path / "folded.onnx", test, fold=True)
    kinds = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "BatchNormalization" not in kinds
    weights, ops = import_onnx(path, "4x4", calibration)
    logits, _ = evaluate(weights, test)
    assert np.mean(np.argmax(logits, 1) == np.argmax(_ort_logits(path, test), 1)) >= 0.95


def test_layout_import_equals_module_import(trained):
    model, calibration, _ = trained
    by_layout = import_layout(model.state_dict(), LAYOUT.split(","), "4x4", calibration)
    assert _same_file(by_layout, import_module(model, "4x4", calibration))


def test_six_by_six_import_measures_its_error(trained):
    model, calibration, test = trained
    weights = import_module(model, "6x6", calibration)
    errors, _ = measure_errors(weights, module_ops(model, "6x6"), test)
    four, _ = measure_errors(import_module(model, "4x4", calibration),
                             module_ops(model, "4x4"), test)
    # F(4x4, 3x3) at int8 without Winograd-aware training: larger than F(2x2, 3x3), even with
    # the tap shifts 6x6 imports get (one scale per channel: 56-87 %).
    assert all(layer.tap_shift is not None for layer in weights.layers)
    assert all(e6.relative_rms > e4.relative_rms for e6, e4 in zip(errors, four))
    assert all(e.relative_rms < 0.12 for e in errors)


def test_functional_forward_is_traced():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 2 * 2, 3)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(x.view(x.size(0), -1))

    ops = module_ops(Net(), "4x4")
    assert [op.kind for op in ops] == ["conv", "relu", "maxpool2", "flatten", "linear"]

    class Sliced(Net):
        def forward(self, x):
            return self.fc(torch.flatten(self.conv(x)[:, :2], 1))

    with pytest.raises(ModelImportError, match="only a chain of ops|is not supported"):
        module_ops(Sliced(), "4x4")

    class ByShape(Net):
        def forward(self, x):
            x = nn.functional.max_pool2d(self.conv(x), 2)
            return self.fc(x.reshape(x.shape[0], -1))

    assert [op.kind for op in module_ops(ByShape(), "4x4")][-2:] == ["flatten", "linear"]


REFUSED = [
    (nn.Conv2d(2, 2, 3, stride=2, padding=1), "stride must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 3, groups=2, padding=1), "groups must be 1, not 2"),
    (nn.Conv2d(2, 2, 3, dilation=2, padding=2), "dilation must be (1, 1), not (2, 2)"),
    (nn.Conv2d(2, 2, 5, padding=2), "kernel must be 3x3, not 5x5"),
    (nn.Conv2d(2, 2, 1), "kernel must be 3x3, not 1x1"),
]


def _refusing_model(conv):
    features = conv(torch.zeros(1, 2, 8, 8)).numel()
    return nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), conv, nn.Flatten(),
                         nn.Linear(features, 3)).eval()


@pytest.mark.parametrize("conv, message", REFUSED)
def test_both_importers_refuse_what_the_accelerator_cannot_run(tmp_path, conv, message):
    model = _refusing_model(conv)
    x = np.zeros((1, 2, 8, 8), np.float32)
    with pytest.raises(ModelImportError) as info:
        import_module(model, "4x4", x)
    assert f"layer '2': {message}" in str(info.value)
    path = _export(model, tmp_path / "bad.onnx", x)
    with pytest.raises(ModelImportError) as info:
        import_onnx(path, "4x4", x)
    assert f"layer '2': {message}" in str(info.value)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "train.import_onnx", str(path), "--tile", "4x4",
                           "--calibration", str(tmp_path / "x.npy"), "--out",
                           str(tmp_path / "w.npz")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not proc.stdout
    assert proc.stderr.startswith(f"train.import_onnx: error: {path}, layer '2': {message}")
    assert not (tmp_path / "w.npz").exists()


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(torch.flatten(x + self.conv(x), 1))


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2), nn.Flatten(),
                   nn.Linear(8, 2)), "layer '1': AvgPool2d is not supported"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3), nn.Flatten(),
                   nn.Linear(2, 2)), "max pooling must be 2x2 with stride 2"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 4), nn.ReLU(),
                   nn.Linear(4, 2)), "only one Linear, the last op, is supported"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()), "must end in a Linear head"),
    (_Residual(), "layer 'add': op 'add' does not take the previous op's output alone; only a "
     "chain of ops is supported"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten(),
                   nn.Linear(32, 2)), "BatchNorm must follow a convolution directly"),
])
def test_unsupported_structure_is_refused_naming_it(model, message):
    with pytest.raises(ModelImportError, match=message):
        import_module(model.eval(), "4x4", np.ones((1, 1, 4, 4)))


def test_complex_weights_are_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, dtype=torch.complex64))
    with pytest.raises(ModelImportError, match="layer '0', key 'weight': dtype must be real, "
                       "not complex64"):
        import_module(model, "4x4", np.ones((1, 1, 4, 4)))


def _qdq_model(tmp_path, qonnx: bool):
    """Conv + Relu + Flatten + Gemm whose weights pass per-channel weight quantisers."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    w[0, 0, 1, :] = 0.0                                  # pruned taps stay exact zeros
    scale = (np.abs(w).reshape(4, -1).max(1) / 7).astype(np.float32)
    fc = rng.standard_normal((3, 4 * 4 * 4)).astype(np.float32)
    inits = [numpy_helper.from_array(fc, "fc.weight"),
             numpy_helper.from_array(np.zeros(3, np.float32), "fc.bias"),
             numpy_helper.from_array(scale, "w_scale")]
    if qonnx:
        inits += [numpy_helper.from_array(w, "conv.weight"),
                  numpy_helper.from_array(np.float32(0), "zp"),
                  numpy_helper.from_array(np.float32(4), "bits")]
        quant = [helper.make_node("Quant", ["conv.weight", "w_scale_k", "zp", "bits"], ["wq"],
                                  domain="qonnx.custom_op.general", signed=1, narrow=1,
                                  rounding_mode="ROUND", name="wquant")]
        inits.append(numpy_helper.from_array(scale.reshape(4, 1, 1, 1), "w_scale_k"))
        q = np.clip(np.rint(w / scale.reshape(4, 1, 1, 1)), -7, 7)
    else:
        q = np.clip(np.rint(w / scale.reshape(4, 1, 1, 1)), -127, 127)
        inits += [numpy_helper.from_array(q.astype(np.int8), "conv.weight"),
                  numpy_helper.from_array(np.zeros(4, np.int8), "w_zp")]
        quant = [helper.make_node("DequantizeLinear", ["conv.weight", "w_scale", "w_zp"], ["wq"],
                                  axis=0, name="wdeq")]
    nodes = quant + [
        helper.make_node("Conv", ["x", "wq"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         name="conv"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["n", 1, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["n", 3])], initializer=inits)
    opsets = [helper.make_opsetid("", 13)]
    if qonnx:
        opsets.append(helper.make_opsetid("qonnx.custom_op.general", 1))
    model = helper.make_model(graph, opset_imports=opsets)
    path = tmp_path / ("q.onnx" if qonnx else "qdq.onnx")
    onnx.save(model, str(path))
    return path, q * scale.reshape(4, 1, 1, 1)


@pytest.mark.parametrize("qonnx", [False, True])
def test_weight_quantisers_are_applied_with_their_per_channel_scales(tmp_path, qonnx):
    path, dequantised = _qdq_model(tmp_path, qonnx)
    from train.onnx_graph import onnx_ops
    ops = onnx_ops(onnx.load(str(path)), "4x4")
    np.testing.assert_allclose(ops[0].weight, dequantised, rtol=1e-7)
    assert np.all(ops[0].weight[0, 0, 1, :] == 0)
    x = np.random.default_rng(4).standard_normal((50, 1, 4, 4)).astype(np.float32)
    weights, ops = import_onnx(path, "4x4", x)
    assert weights.names == ["conv"] and str(weights.network.ops[-1]) == "linear:fc"
    if not qonnx:   # onnxruntime runs DequantizeLinear (QONNX's Quant needs the qonnx package)
        logits, _ = evaluate(weights, x)
        agree = np.mean(np.argmax(logits, 1) == np.argmax(_ort_logits(path, x), 1))
        assert agree >= 0.9, agree


def test_state_dict_cli_with_model_and_layout(trained, tmp_path, monkeypatch):
    model, calibration, test = trained
    state = tmp_path / "vgg.pt"
    torch.save(model.state_dict(), state)
    np.save(tmp_path / "x.npy", calibration)
    (tmp_path / "vggmod.py").write_text(
        "from torch import nn\n\n\ndef make():\n    return nn.Sequential(\n"
        "        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),\n"
        "        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), "
        "nn.MaxPool2d(2),\n        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), "
        "nn.ReLU(), nn.MaxPool2d(2),\n        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--tile", "4x4", "--calibration", str(tmp_path / "x.npy")]
    assert state_dict_main([str(state), "--model", "vggmod:make", *common,
                            "--out", str(tmp_path / "a.npz")]) == 0
    assert state_dict_main([str(state), "--layout", LAYOUT, *common,
                            "--out", str(tmp_path / "b.npz")]) == 0
    a, b = load_weights(tmp_path / "a.npz"), load_weights(tmp_path / "b.npz")
    assert _same_file(a, b) and _same_file(a, import_module(model, "4x4", calibration))


@pytest.mark.parametrize("extra, message", [
    ([], "a state_dict records neither the order of ops nor strides"),
    (["--layout", "0,relu,flatten,12"], "key '1.weight': not used by the layout"),
    (["--layout", "0,zz"], "layout item 'zz' is neither"),
    (["--model", "nomodule_xyz:make"], "--model nomodule_xyz:make: cannot import"),
    (["--model", "torch.nn:Identity"], "does not fit --model torch.nn:Identity"),
])
def test_state_dict_cli_errors_are_one_line(trained, tmp_path, capsys, extra, message):
    model, calibration, _ = trained
    torch.save(model.state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", calibration)
    assert state_dict_main([str(tmp_path / "m.pt"), "--tile", "4x4", "--calibration",
                            str(tmp_path / "x.npy"), "--out", str(tmp_path / "w.npz"),
                            *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("train.import_state_dict: error: ")
    assert message in err and err.count("\n") == 1


def test_pickled_module_is_refused_suggesting_state_dict(tmp_path, capsys):
    torch.save(nn.Sequential(nn.Conv2d(1, 1, 3)), tmp_path / "whole.pt")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 4, 4)))
    assert state_dict_main([str(tmp_path / "whole.pt"), "--layout", "0", "--tile", "4x4",
                            "--calibration", str(tmp_path / "x.npy"), "--out",
                            str(tmp_path / "w.npz")]) == 2
    assert "torch.save(model.state_dict(), PATH)" in capsys.readouterr().err


def test_onnx_cli_writes_the_file_and_reports_errors_per_layer(trained, tmp_path, capsys):
    model, calibration, _ = trained
    path = _export(model, tmp_path / "vgg.onnx", calibration)
    np.save(tmp_path / "x.npy", calibration)
    assert onnx_main([str(path), "--tile", "6x6", "--calibration", str(tmp_path / "x.npy"),
                      "--out", str(tmp_path / "w.npz")]) == 0
    out = capsys.readouterr().out
    assert "relative RMS output error per layer" in out
    assert all(f"  {name}: " in out for name in ("0", "3", "7"))
    assert load_weights(tmp_path / "w.npz").version == 2


def _activation_qdq_model(tmp_path, zero_point_dtype=np.int8):
    """Float model with fake-quantised activations: Q/DQ on the input and after the ReLU."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((3, 4 * 4 * 4)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "conv.weight"),
             numpy_helper.from_array(fc, "fc.weight"),
             numpy_helper.from_array(np.zeros(3, np.float32), "fc.bias"),
             numpy_helper.from_array(np.float32(0.03), "s_in"),
             numpy_helper.from_array(np.float32(0.05), "s_act"),
             numpy_helper.from_array(np.zeros((), zero_point_dtype), "zp")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "zp"], ["xd"]),
        helper.make_node("Conv", ["xd", "conv.weight"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "s_act", "zp"], ["rq"], name="act_q"),
        helper.make_node("DequantizeLinear", ["rq", "s_act", "zp"], ["rd"]),
        helper.make_node("Flatten", ["rd"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "act", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["n", 1, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["n", 3])], initializer=inits)
    path = tmp_path / "act.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_activation_quantisers_give_the_activation_scales(tmp_path):
    from golden.quant import quantize_multiplier
    path = _activation_qdq_model(tmp_path)
    x = np.random.default_rng(6).standard_normal((100, 1, 4, 4)).astype(np.float32)
    weights, ops = import_onnx(path, "4x4", x)
    assert [op.kind for op in ops] == ["quant", "conv", "relu", "quant", "flatten", "linear"]
    layer = weights["conv"]
    assert weights.network.input_scale == layer.input_scale == np.float32(0.03)
    expected = [quantize_multiplier(float(v)) for v in
                layer.input_scale * layer.scale.astype(np.float64) / float(np.float32(0.05))]
    assert [tuple(p) for p in zip(layer.requant_mult, layer.requant_shift)] == expected
    logits, _ = evaluate(weights, x)
    agree = np.mean(np.argmax(logits, 1) == np.argmax(_ort_logits(path, x), 1))
    assert agree >= 0.95, agree


def test_uint8_activation_quantiser_is_refused(tmp_path):
    path = _activation_qdq_model(tmp_path, np.uint8)
    with pytest.raises(ModelImportError, match=r"activation quantiser must be int8 per tensor "
                       r"with zero point 0 \(the accelerator's activations\), not levels "
                       r"\[0, 255\]"):
        import_onnx(path, "4x4", np.zeros((1, 1, 4, 4)))


def test_docs_page_names_every_refusal():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "import.md").read_text()
    for _, message in REFUSED:
        assert message.split(", not")[0] in doc, message
    for phrase in ("BatchNorm must follow a convolution directly",
                   "only one Linear, the last op, is supported", "dtype must be real",
                   "only a chain of ops is supported", "padding must be equal on every side"):
        assert phrase in doc


def test_default_exporter_file_imports_and_agrees_with_onnxruntime(trained, tmp_path):
    model, calibration, test = trained
    path = tmp_path / "dynamo.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.as_tensor(test[:1]),), str(path), verbose=False)
    weights, _ = import_onnx(path, "4x4", calibration)
    assert [str(op) for op in weights.network.ops][-2:] == ["flatten", "linear:12"]
    float_logits = np.concatenate([_ort_logits(path, test[i:i + 1]) for i in range(len(test))])
    logits, _ = evaluate(weights, test)
    assert np.mean(np.argmax(logits, 1) == np.argmax(float_logits, 1)) >= 0.95


def test_state_dict_cli_refuses_a_strided_model_naming_the_layer(tmp_path, monkeypatch, capsys):
    (tmp_path / "stridemod.py").write_text(
        "from torch import nn\n\n\ndef make():\n    return nn.Sequential(nn.Conv2d(1, 2, 3, "
        "padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2, padding=1), nn.Flatten(), "
        "nn.Linear(8, 2))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from stridemod import make
    torch.save(make().state_dict(), tmp_path / "m.pt")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 4, 4)))
    assert state_dict_main([str(tmp_path / "m.pt"), "--model", "stridemod:make", "--tile", "4x4",
                            "--calibration", str(tmp_path / "x.npy"), "--out",
                            str(tmp_path / "w.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train.import_state_dict: error: {tmp_path / 'm.pt'}, layer '2': "
                          "stride must be (1, 1), not (2, 2)") and err.count("\n") == 1
    assert not (tmp_path / "w.npz").exists()

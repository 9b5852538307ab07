"""An independent NumPy reading of docs/weight-format.md (version 2 networks): no golden.conv,
no golden.quant, Python integers where rounding matters. The references of the golden.network
and sim.network tests."""

import numpy as np

__all__ = ["spec_conv", "spec_network", "spec_requant"]


def spec_conv(x, layer):
    """Raw int64 output of one conv for one image [C, H, W]: each output position is a direct
    correlation of its tile's alpha x alpha input window with the spatial kernel that
    ``AT ((U . (BT d BT^T)) * 2**(T - tap_shift)) AT^T`` applies to that position (T =
    max(tap_shift); no tap shifts: all zero), in float64 (exact: every value is an integer far
    below 2**53)."""
    U = layer.U.astype(np.float64)
    if layer.tap_shift is not None:
        shift = layer.tap_shift.astype(np.int64)
        U = U * np.exp2(shift.max() - shift)
    AT, BT = layer.AT.astype(np.float64), layer.BT.astype(np.float64)
    k, c, a, _ = U.shape
    m, p = AT.shape[0], layer.padding
    kernel = np.einsum("ia,jb,kcab,ax,by->kcijxy", AT, AT, U, BT, BT, optimize=True)
    h, w = x.shape[1:]
    hout, wout = h + 2 * p - layer.r + 1, w + 2 * p - layer.r + 1
    ext = np.zeros((c, hout + a, wout + a))            # zeros where a tile runs past the padding
    ext[:, p:p + h, p:p + w] = x
    y = np.zeros((k, hout, wout))
    for oy in range(hout):
        for ox in range(wout):
            i, j = oy % m, ox % m
            window = ext[:, oy - i:oy - i + a, ox - j:ox - j + a]
            y[:, oy, ox] = np.einsum("cxy,kcxy->k", window, kernel[:, :, i, j])
    assert np.all(y == np.rint(y))
    return y.astype(np.int64) + layer.bias_or_zeros[:, None, None]


def spec_requant(y, mult, shift, relu):
    """clamp((y * mult + 2**(shift-1)) >> shift, -128, 127), then ReLU, with Python integers."""
    out = np.empty(y.shape, dtype=np.int64)
    for idx in np.ndindex(*y.shape):
        mu, sh = int(mult[idx[0]]), int(shift[idx[0]])
        q = (int(y[idx]) * mu + (1 << (sh - 1) if sh else 0)) >> sh
        q = min(max(q, -128), 127)
        out[idx] = max(q, 0) if relu else q
    return out


def spec_network(weights, image):
    """Per-op outputs of one int8 image [C, H, W] by the specification."""
    net, x, outs = weights.network, image.astype(np.int64), []
    for op in net.ops:
        if op.kind == "conv":
            layer = weights[op.name]
            x = spec_requant(spec_conv(x, layer), layer.requant_mult, layer.requant_shift,
                             layer.relu)
        elif op.kind == "maxpool2":
            c, h, w = x.shape
            x = np.array([[[max(x[ch, 2 * i, 2 * j], x[ch, 2 * i, 2 * j + 1],
                                x[ch, 2 * i + 1, 2 * j], x[ch, 2 * i + 1, 2 * j + 1])
                            for j in range(w // 2)] for i in range(h // 2)] for ch in range(c)])
        elif op.kind == "flatten":
            x = np.array([x[ch, i, j] for ch in range(x.shape[0]) for i in range(x.shape[1])
                          for j in range(x.shape[2])])
        else:
            W, b = net.linear.W.astype(np.float64), net.linear.b.astype(np.float64)
            x = (W @ x.astype(np.float64) + b).astype(np.int64)
        outs.append(x)
    return outs

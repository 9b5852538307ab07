"""Bit-growth analysis: exact worst-case ranges and widths of every datapath stage.

Each stage's range is the exact worst case given the ranges of its inputs (interval arithmetic
per Winograd position, sign-aware), so a register of the reported width cannot overflow. This is
the single source of register widths for ``hw``.

Stages, for an integer input tile ``d`` and quantised Winograd weights ``U``::

    V = BT d BT^T            (input transform)
    P = U * V                (one product per nonzero weight)
    M = sum_c P              (channel accumulator, up to max_in_channels terms)
    S = M * 2**(T - s)       (tap shift stage: left shift of each position by 0 .. max_tap_shift)
    Y = AT S AT^T + bias     (output transform)

With ``max_tap_shift`` 0 (no tap shifts) S is M and every width is what it is without the stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DatapathWidths", "bits_for_range", "check_range", "datapath_widths", "signed_range",
           "value_range"]


def signed_range(width: int) -> tuple[int, int]:
    """The range of a two's complement integer of ``width`` bits."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def value_range(width: int, signed: bool = True) -> tuple[int, int]:
    """The range of a ``width``-bit integer: two's complement if ``signed``, else unsigned."""
    return signed_range(width) if signed else (0, (1 << width) - 1)


def check_range(name: str, values, width: int, signed: bool = True) -> None:
    """Refuse ``values`` (an integer or an array of integers) outside :func:`value_range`.

    Raises
    ------
    ValueError
        ``"<name> = <first value outside> does not fit signed(<width>) [<lo>, <hi>]"``
        (``unsigned`` when not ``signed``).
    """
    lo, hi = value_range(width, signed)
    if np.ndim(values) == 0:
        bad = [int(values)]
    else:
        flat = np.asarray(values).ravel()
        if not flat.size or lo <= int(flat.min()) and int(flat.max()) <= hi:
            return
        bad = flat.tolist()
    for value in bad:
        if not lo <= int(value) <= hi:
            kind = "signed" if signed else "unsigned"
            raise ValueError(f"{name} = {int(value)} does not fit {kind}({width}) [{lo}, {hi}]")


def bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer in [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    width = 1
    while True:
        w_lo, w_hi = signed_range(width)
        if w_lo <= lo and hi <= w_hi:
            return width
        width += 1


def _linear_range(coeffs: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Exact range of sum(coeffs * x) over independent x in [lo, hi]."""
    c = [int(v) for v in np.asarray(coeffs).ravel()]
    top = sum(v * hi if v > 0 else v * lo for v in c)
    bottom = sum(v * lo if v > 0 else v * hi for v in c)
    return bottom, top


def _product_range(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    corners = [x * y for x in a for y in b]
    return min(corners), max(corners)


@dataclass(frozen=True)
class DatapathWidths:
    """Worst-case ranges and two's complement widths of each stage.

    Members
    -------
    input, weight, v, product, accumulator, shifted, transformed, output : int
        Widths in bits; ``shifted`` is the accumulator after the tap shift stage,
        ``transformed`` is AT S AT^T before the bias, ``output`` after it.
    v_range, product_range, accumulator_range, shifted_range, output_range : tuple of int
        The (min, max) the widths were derived from (over all Winograd positions).
    max_tap_shift : int
        Largest left shift of the tap shift stage.
    """

    input: int
    weight: int
    bias: int
    v: int
    product: int
    accumulator: int
    transformed: int
    output: int
    v_range: tuple[int, int]
    product_range: tuple[int, int]
    accumulator_range: tuple[int, int]
    transformed_range: tuple[int, int]
    output_range: tuple[int, int]
    max_tap_shift: int = 0
    shifted: int | None = None
    shifted_range: tuple[int, int] | None = None

    def as_dict(self) -> dict:
        """Plain dict for JSON manifests."""
        return {
            "input": self.input, "weight": self.weight, "bias": self.bias, "v": self.v,
            "product": self.product, "accumulator": self.accumulator,
            "transformed": self.transformed, "output": self.output,
            "v_range": list(self.v_range), "product_range": list(self.product_range),
            "accumulator_range": list(self.accumulator_range),
            "transformed_range": list(self.transformed_range),
            "output_range": list(self.output_range),
            "max_tap_shift": self.max_tap_shift, "shifted": self.shifted,
            "shifted_range": list(self.shifted_range),
        }


def datapath_widths(AT: np.ndarray, BT: np.ndarray, *, input_width: int = 8,
                    weight_width: int = 8, max_in_channels: int = 64,
                    bias_width: int = 32, max_tap_shift: int = 0) -> DatapathWidths:
    """Derive exact worst-case widths of the integer datapath.

    Parameters
    ----------
    AT, BT : ndarray of int
        Integer output (m x alpha) and input (alpha x alpha) transforms.
    input_width : int
        Activations are signed ``input_width``-bit integers (full two's complement range).
    weight_width : int
        Weights are symmetric: ``|U| <= 2 ** (weight_width - 1) - 1`` (int8: [-127, 127]).
    max_in_channels : int
        Most channels summed into one accumulator.
    bias_width : int
        Bias is a signed ``bias_width``-bit integer.
    max_tap_shift : int
        Largest left shift ``max(tap_shift) - tap_shift`` of one position; at least one
        position of a layer has shift 0 (the one with the largest tap shift).
    """
    for name, value, low in (("input_width", input_width, 2), ("weight_width", weight_width, 2),
                             ("max_in_channels", max_in_channels, 1),
                             ("bias_width", bias_width, 1), ("max_tap_shift", max_tap_shift, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    AT = np.asarray(AT, dtype=np.int64)
    BT = np.asarray(BT, dtype=np.int64)
    alpha = BT.shape[0]
    d_lo, d_hi = signed_range(input_width)
    w_hi = signed_range(weight_width)[1]
    b_lo, b_hi = signed_range(bias_width)

    # V[i, j] = sum_pq BT[i, p] BT[j, q] d[p, q]: coefficients are the outer product.
    v_ranges = [[_linear_range(np.outer(BT[i], BT[j]), d_lo, d_hi) for j in range(alpha)]
                for i in range(alpha)]
    p_ranges = [[_product_range((-w_hi, w_hi), v) for v in row] for row in v_ranges]
    acc_ranges = [[(max_in_channels * lo, max_in_channels * hi) for lo, hi in row]
                  for row in p_ranges]
    # Every position may be shifted by anything in 0 .. max_tap_shift (the range holds 0, so
    # the largest shift gives the extremes), except that one position is not shifted at all.
    factor = 1 << max_tap_shift
    s_ranges = [[(lo * factor, hi * factor) for lo, hi in row] for row in acc_ranges]
    # Y[i, j] = sum_xy AT[i, x] AT[j, y] S[x, y], each S[x, y] in its own range.
    m = AT.shape[0]
    t_ranges = []
    for i in range(m):
        for j in range(m):
            coeffs = np.outer(AT[i], AT[j])
            lows, highs = [], []
            for x in range(alpha):
                for y in range(alpha):
                    c = int(coeffs[x, y])
                    a_lo, a_hi = acc_ranges[x][y]
                    lows.append(min(c * a_lo, c * a_hi))
                    highs.append(max(c * a_lo, c * a_hi))
            # All shifted by the most but one: the unshifted position whose term matters least.
            lo = factor * sum(lows) - max((factor - 1) * v for v in lows)
            hi = factor * sum(highs) - min((factor - 1) * v for v in highs)
            t_ranges.append((lo, hi))

    def hull(ranges):
        flat = [r for row in ranges for r in row] if isinstance(ranges[0], list) else ranges
        return min(r[0] for r in flat), max(r[1] for r in flat)

    v_range, p_range, a_range, s_range, t_range = (hull(v_ranges), hull(p_ranges),
                                                   hull(acc_ranges), hull(s_ranges),
                                                   hull(t_ranges))
    o_range = (t_range[0] + b_lo, t_range[1] + b_hi)
    return DatapathWidths(
        input=input_width, weight=weight_width, bias=bias_width,
        v=bits_for_range(*v_range), product=bits_for_range(*p_range),
        accumulator=bits_for_range(*a_range), transformed=bits_for_range(*t_range),
        output=bits_for_range(*o_range),
        v_range=v_range, product_range=p_range, accumulator_range=a_range,
        transformed_range=t_range, output_range=o_range, max_tap_shift=max_tap_shift,
        shifted=bits_for_range(*s_range), shifted_range=s_range)

"""Multiplier-free constant arithmetic: products and linear combinations with integer constants
built from shifts, additions and subtractions only.

Each constant is written in canonical signed-digit form (the non-adjacent form, NAF): the
fewest signed powers of two that sum to it, so ``x * 7`` costs one subtraction
(``(x << 3) - x``) and never a ``$mul`` cell. A linear combination ``sum(c_i * x_i)`` expands
every constant into its signed digits and sums all shifted terms with a balanced adder tree.

Widths are exact: every adder is as wide as the exact range of its partial sum (interval
arithmetic over the operands' shapes), capped at the result width. A caller that passes
``width`` (e.g. from :mod:`golden.widths`) promises that the true result fits; the sum is then
computed modulo ``2**width``, which two's complement makes exact for every intermediate.
"""

from __future__ import annotations

import numbers

from amaranth.hdl import Cat, Const, Shape, Value, signed

from golden.widths import bits_for_range

__all__ = ["constant_multiply", "csd_digits", "linear_combination", "resize_signed"]


def _check_constant(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return int(value)


def csd_digits(constant: int) -> tuple[tuple[int, int], ...]:
    """Canonical signed-digit (non-adjacent form) decomposition of an integer constant.

    Parameters
    ----------
    constant : int
        Any integer (0 gives no digits).

    Returns
    -------
    tuple of (int, int)
        ``(shift, sign)`` pairs, lowest shift first, ``sign`` in {-1, +1}, with
        ``sum(sign << shift) == constant``; no two shifts are adjacent, so the number of digits
        is the minimum over all signed-digit representations.

    Raises
    ------
    TypeError
        If ``constant`` is not an integer.
    """
    value = _check_constant("constant", constant)
    digits = []
    shift = 0
    while value:
        if value & 1:
            # value mod 4 == 3 -> digit -1 (the carry makes the next digit 0): NAF rule.
            sign = 2 - (value & 3)
            digits.append((shift, sign))
            value -= sign
        value >>= 1
        shift += 1
    return tuple(digits)


def _shape_range(shape: Shape) -> tuple[int, int]:
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


class _Node:
    """A partial sum: ``expr`` (a signed Value in [lo, hi]) stands for ``-expr`` if negated."""

    __slots__ = ("expr", "lo", "hi", "negated")

    def __init__(self, expr: Value, lo: int, hi: int, negated: bool):
        self.expr, self.lo, self.hi, self.negated = expr, lo, hi, negated


def resize_signed(value, width: int) -> Value:
    """``value`` as a signed value of exactly ``width`` bits, by wiring alone.

    Parameters
    ----------
    value : value-like
        Signed (sign-extended) or unsigned (zero-extended) operand.
    width : int
        Result width; a narrower result keeps the low bits, which is exact when the value
        fits ``signed(width)``.

    Returns
    -------
    Value
        A ``signed(width)`` value.
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width must be a positive integer, not {width!r}")
    expr = Value.cast(value)
    shape = expr.shape()
    if shape.width >= width:
        return expr[:width].as_signed()
    pad = width - shape.width
    fill = expr[-1].replicate(pad) if shape.signed and shape.width else Const(0, pad)
    return Cat(expr, fill).as_signed()


def _fit(expr: Value, lo: int, hi: int, cap: int | None) -> Value:
    """``expr`` cut to the exact width of its range [lo, hi] (at most ``cap`` bits)."""
    width = bits_for_range(lo, hi)
    if cap is not None:
        width = min(width, cap)
    shape = expr.shape()
    if shape.width < width:          # already narrower than the range needs: keep the wires
        return expr
    if shape.signed and shape.width == width:
        return expr
    return expr[:width].as_signed()


def _signed_width(expr: Value) -> int:
    shape = expr.shape()
    return shape.width if shape.signed else shape.width + 1


def _combine(a: _Node, b: _Node, cap: int | None) -> _Node:
    # Equal-width signed operands: the generated Verilog then has no implicit extension.
    common = max(_signed_width(a.expr), _signed_width(b.expr))
    a = _Node(resize_signed(a.expr, common), a.lo, a.hi, a.negated)
    b = _Node(resize_signed(b.expr, common), b.lo, b.hi, b.negated)
    if a.negated == b.negated:
        expr, lo, hi, negated = a.expr + b.expr, a.lo + b.lo, a.hi + b.hi, a.negated
    elif a.negated:
        expr, lo, hi, negated = b.expr - a.expr, b.lo - a.hi, b.hi - a.lo, False
    else:
        expr, lo, hi, negated = a.expr - b.expr, a.lo - b.hi, a.hi - b.lo, False
    return _Node(_fit(expr, lo, hi, cap), lo, hi, negated)


def linear_combination(terms, width: int | None = None) -> Value:
    """Build ``sum(coefficient * value)`` for integer constant coefficients without multipliers.

    Parameters
    ----------
    terms : iterable of (int, value-like)
        ``(coefficient, value)`` pairs; a value may be any Amaranth value-castable, signed or
        unsigned. Zero coefficients contribute nothing.
    width : int, optional
        Result width (signed). The caller guarantees the true sum fits in ``width`` bits (e.g. a
        width from :mod:`golden.widths`); the sum is then exact, computed modulo
        ``2**width``. Default: the exact minimal width of the sum's range over the operands'
        shapes.

    Returns
    -------
    Value
        A signed value of ``width`` bits (or the exact minimal width).

    Raises
    ------
    TypeError
        If a coefficient is not an integer or a value is not value-castable.
    ValueError
        If ``width`` is not a positive integer.
    """
    if width is not None and (isinstance(width, bool) or not isinstance(width, numbers.Integral)
                              or width < 1):
        raise ValueError(f"width must be a positive integer, not {width!r}")
    operands = []
    for index, term in enumerate(terms):
        if not isinstance(term, tuple) or len(term) != 2:
            raise TypeError(f"term {index} must be a (coefficient, value) pair, not {term!r}")
        coefficient = _check_constant(f"coefficient of term {index}", term[0])
        operands.append((coefficient, Value.cast(term[1])))
    # Exact range of the sum (independent operands); every partial sum is cut to the result
    # width, which is exact modulo 2**width.
    lo = hi = 0
    for coefficient, value in operands:
        low, high = _shape_range(value.shape())
        lo += min(coefficient * low, coefficient * high)
        hi += max(coefficient * low, coefficient * high)
    if width is None:
        width = bits_for_range(lo, hi)
    nodes = []
    for coefficient, value in operands:
        low, high = _shape_range(value.shape())
        for shift, sign in csd_digits(coefficient):
            shifted = _fit(value << shift, low << shift, high << shift, width)
            nodes.append(_Node(shifted, low << shift, high << shift, sign < 0))
    if not nodes:
        return Const(0, signed(width))
    # Balanced tree: adder depth ceil(log2(terms)); pairing keeps neighbours (same operand).
    while len(nodes) > 1:
        paired = [_combine(nodes[i], nodes[i + 1], width) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    root = nodes[0]
    return resize_signed(-root.expr if root.negated else root.expr, width)


def constant_multiply(value, constant: int, width: int | None = None) -> Value:
    """Build ``value * constant`` from shifts and adds (see :func:`linear_combination`).

    Parameters
    ----------
    value : value-like
        Signed or unsigned operand.
    constant : int
        Integer constant.
    width : int, optional
        Result width the caller guarantees the product fits; default exact minimal width.

    Returns
    -------
    Value
        Signed product.
    """
    return linear_combination([(constant, value)], width)

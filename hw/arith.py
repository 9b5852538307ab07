"""Multiplier-free constant arithmetic: products and linear combinations with integer constants
built from shifts, additions and subtractions only.

Each constant is written in canonical signed-digit form (the non-adjacent form, NAF): the
fewest signed powers of two that sum to it, so ``x * 7`` costs one subtraction
(``(x << 3) - x``) and never a ``$mul`` cell. A linear combination ``sum(c_i * x_i)`` expands
every constant into its signed digits and sums all shifted terms with a balanced adder tree.
A matrix-vector product (:func:`linear_transform`) also shares adders between rows: sum and
difference operands, and butterfly row pairs, as Winograd's transform matrices invite.

Widths are exact: every adder is as wide as the exact range of its partial sum (interval
arithmetic over the operands' shapes), capped at the result width. A caller that passes
``width`` (e.g. from :mod:`golden.widths`) promises that the true result fits; the sum is then
computed modulo ``2**width``, which two's complement makes exact for every intermediate.
"""

from __future__ import annotations

import itertools
import numbers

from amaranth.hdl import Cat, Const, Module, Shape, Signal, Value, signed

from golden.widths import bits_for_range, value_range

__all__ = ["constant_multiply", "csd_digits", "linear_combination", "linear_transform",
           "resize_signed"]


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
    return value_range(shape.width, shape.signed)


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
    if not shape.signed:
        return Cat(expr, Const(0, pad)).as_signed()
    # Shift up, then arithmetically down: one reference to ``expr``, where Cat with its
    # replicated sign bit would build the whole expression once more.
    return Cat(Const(0, pad), expr).as_signed() >> pad


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
        value = Value.cast(term[1])
        operands.append((coefficient, _Node(value, *_shape_range(value.shape()), False)))
    lo, hi = _combination_range(operands)
    if width is None:
        width = bits_for_range(lo, hi)
    return _as_value(_sum_tree(operands, width), width)


def _combination_range(operands) -> tuple[int, int]:
    """Range of sum(coefficient * operand) over independent operands."""
    lo = hi = 0
    for coefficient, node in operands:
        lo += min(coefficient * node.lo, coefficient * node.hi)
        hi += max(coefficient * node.lo, coefficient * node.hi)
    return lo, hi


def _sum_tree(operands, cap: int) -> _Node:
    """The sum of ``(coefficient, node)`` pairs as a balanced tree of signed-digit terms, every
    partial sum cut to at most ``cap`` bits (exact modulo ``2**cap``)."""
    nodes = []
    for coefficient, node in operands:
        for shift, sign in csd_digits(coefficient):
            lo, hi = node.lo << shift, node.hi << shift
            nodes.append(_Node(_fit(node.expr << shift, lo, hi, cap), lo, hi, sign < 0))
    if not nodes:
        return _Node(Const(0, signed(1)), 0, 0, False)
    # Balanced tree: adder depth ceil(log2(terms)); pairing keeps neighbours (same operand).
    while len(nodes) > 1:
        paired = [_combine(nodes[i], nodes[i + 1], cap) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    root = nodes[0]
    if root.negated:
        root = _Node(-root.expr, -root.hi, -root.lo, False)
    return root


def _as_value(node: _Node, width: int) -> Value:
    return resize_signed(node.expr, width)


def _digits(row) -> int:
    """Signed-digit terms of a coefficient row (adders to sum it: this minus one)."""
    return sum(len(csd_digits(c)) for c in row)


def _wire(m: Module, node: _Node, name: str) -> _Node:
    """``node`` through a named wire, so every user shares one adder (an expression used
    twice would be built twice)."""
    wire = Signal(node.expr.shape(), name=name)
    m.d.comb += wire.eq(node.expr)
    return _Node(wire, node.lo, node.hi, node.negated)


def _share_operand_pairs(m: Module, name: str, matrix: list[list[int]], nodes: list[_Node],
                         cap: int):
    """Replace operand pairs whose columns agree in magnitude row by row by their sum and
    difference (``x_p + x_q``, ``x_p - x_q``) while that saves adders."""
    # Terminates: every rewrite removes at least two signed digits from the matrix.
    for pair in itertools.count():
        best = None
        for p in range(len(nodes)):
            for q in range(p + 1, len(nodes)):
                rows_sum, rows_diff, saved = [], [], 0
                for r, row in enumerate(matrix):
                    a, b = row[p], row[q]
                    if abs(a) != abs(b):
                        break
                    if a:
                        (rows_sum if a == b else rows_diff).append(r)
                        saved += len(csd_digits(a))
                else:
                    gain = saved - bool(rows_sum) - bool(rows_diff)
                    if gain > 0 and (best is None or gain > best[0]):
                        best = (gain, p, q, rows_sum, rows_diff)
        if best is None:
            return matrix, nodes
        _, p, q, rows_sum, rows_diff = best
        new_columns, new_nodes = [], []
        for rows, sign in ((rows_sum, 1), (rows_diff, -1)):
            if rows:
                operands = [(1, nodes[p]), (sign, nodes[q])]
                kind = "sum" if sign > 0 else "diff"
                new_nodes.append(_wire(m, _sum_tree(operands, cap), f"{name}_pair{pair}_{kind}"))
                new_columns.append([row[p] if r in rows else 0 for r, row in enumerate(matrix)])
        keep = [k for k in range(len(nodes)) if k not in (p, q)]
        matrix = [[row[k] for k in keep] + [col[r] for col in new_columns]
                  for r, row in enumerate(matrix)]
        nodes = [nodes[k] for k in keep] + new_nodes


def _pair_rows(matrix: list[list[int]]) -> list[tuple[int, int]]:
    """Disjoint row pairs (r1, r2) computed cheaper as ``E + O`` and ``E - O`` with the integer
    rows ``E = (r1 + r2) / 2`` and ``O = (r1 - r2) / 2`` (a butterfly), best saving first."""
    candidates = []
    for r1 in range(len(matrix)):
        for r2 in range(r1 + 1, len(matrix)):
            a, b = matrix[r1], matrix[r2]
            if any((x + y) % 2 for x, y in zip(a, b)):
                continue
            even = [(x + y) // 2 for x, y in zip(a, b)]
            odd = [(x - y) // 2 for x, y in zip(a, b)]
            if not any(even) or not any(odd):
                continue
            gain = (_digits(a) + _digits(b) - 2) - (_digits(even) + _digits(odd))
            if gain > 0:
                candidates.append((-gain, r1, r2))
    pairs, used = [], set()
    for _, r1, r2 in sorted(candidates):
        if r1 not in used and r2 not in used:
            pairs.append((r1, r2))
            used |= {r1, r2}
    return pairs


def linear_transform(m: Module, matrix, values, width: int | None = None, *,
                     name: str = "transform") -> list[Value]:
    """Build ``matrix @ values`` for an integer constant matrix without multipliers, sharing
    adders between rows.

    Two rewrites run while they save adders: operands whose columns have equal magnitudes in
    every row are replaced by their sum and difference (the structure of Winograd's ``AT``),
    and row pairs become butterflies ``E +- O`` of their half sum and half difference (the
    structure of ``BT``). Each output is then a :func:`linear_combination` of the operands.

    Parameters
    ----------
    m : Module
        Module that receives the combinational wires of the shared partial sums.
    matrix : 2-D array-like of int
        Coefficients, one row per output, one column per value.
    values : sequence of value-like
        Signed or unsigned operands, as many as ``matrix`` has columns.
    width : int, optional
        Width of every output; the caller guarantees each true result fits it. Default: each
        output's exact minimal width over the operands' shapes.
    name : str
        Prefix of the shared wires' names.

    Returns
    -------
    list of Value
        One signed value per row of ``matrix``.

    Raises
    ------
    TypeError
        If a coefficient is not an integer or ``m`` is not a Module.
    ValueError
        If ``matrix`` is not a 2-D list of rows as long as ``values``, or ``width`` is not a
        positive integer.
    """
    if width is not None and (isinstance(width, bool) or not isinstance(width, numbers.Integral)
                              or width < 1):
        raise ValueError(f"width must be a positive integer, not {width!r}")
    if not isinstance(m, Module):
        raise TypeError(f"m must be an amaranth Module, not {m!r}")
    values = [Value.cast(v) for v in values]
    rows = [list(row) for row in matrix]
    if any(len(row) != len(values) for row in rows):
        raise ValueError(f"matrix rows must have {len(values)} coefficients (one per value), "
                         f"not {[len(row) for row in rows]}")
    rows = [[_check_constant(f"matrix[{r}][{c}]", v) for c, v in enumerate(row)]
            for r, row in enumerate(rows)]
    nodes = [_Node(v, *_shape_range(v.shape()), False) for v in values]
    widths = [bits_for_range(*_combination_range(list(zip(row, nodes)))) if width is None
              else width for row in rows]
    cap = max(widths, default=1)
    matrix, nodes = _share_operand_pairs(m, name, rows, nodes, cap)
    results = [None] * len(matrix)
    for r1, r2 in _pair_rows(matrix):
        even, odd = ([((a + sign * b) // 2, n) for a, b, n in zip(matrix[r1], matrix[r2], nodes)]
                     for sign in (1, -1))
        even = _wire(m, _sum_tree(even, cap), f"{name}_even{r1}_{r2}")
        odd = _wire(m, _sum_tree(odd, cap), f"{name}_odd{r1}_{r2}")
        results[r1] = _sum_tree([(1, even), (1, odd)], cap)
        results[r2] = _sum_tree([(1, even), (-1, odd)], cap)
    for r, row in enumerate(matrix):
        if results[r] is None:
            results[r] = _sum_tree(list(zip(row, nodes)), cap)
    return [_as_value(node, w) for node, w in zip(results, widths)]


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

"""Winograd input and output transform units: pipelined, one tile per cycle, multiplier-free.

Both transforms are separable, so each unit runs a 1-D transform over the rows of its tile,
registers the result, then a 1-D transform over the columns (``hw.arith`` shift-and-add
linear combinations; the integer matrices come from :class:`golden.config.AcceleratorConfig`).
Every stage is a register with a valid bit; a stage loads when it is empty or its successor
loads, so bubbles close up and ``ready`` ripples back combinationally while ``valid`` never
depends on ``ready``. With ``drain_positions`` below ``alpha**2`` the output transform takes a
channel in ``drain_beats`` beats and accumulates ``Y`` over them instead.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.config import AcceleratorConfig
from golden.protocol import output_transform_input_spec, patch_spec, result_spec, v_spec
from golden.widths import signed_range

from .arith import linear_transform
from .layouts import to_layout

__all__ = ["InputTransform", "OutputTransform"]


def _check_config(config) -> AcceleratorConfig:
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be a golden.config.AcceleratorConfig, not {config!r}")
    return config


def _capped(expr, cap: int):
    """``expr`` reduced to ``cap`` bits when wider: exact modulo ``2**cap``, which is all the
    following linear stage needs when its own result fits ``cap`` bits."""
    return expr[:cap].as_signed() if expr.shape().width > cap else expr


def _sign_folded(row) -> tuple[tuple[int, ...], int]:
    """``row`` as ``(folded, negate)``: ``row == -folded`` when ``negate`` is 1, ``folded``'s
    first nonzero coefficient positive (an all-zero row is its own fold)."""
    row = tuple(row)
    leading = next((c for c in row if c), 0)
    return (tuple(-c for c in row), 1) if leading < 0 else (row, 0)


def _all_ones_column(matrix: np.ndarray) -> int:
    """Index of the first all-ones column (AT's column for the interpolation point 1)."""
    for column in range(matrix.shape[1]):
        if np.all(matrix[:, column] == 1):
            return column
    raise ValueError(f"output transform has no all-ones column to add the bias through: "
                     f"{matrix.tolist()}")


def _registers(prefix: str, exprs) -> list:
    """One register per expression, shaped like it."""
    return [Signal(expr.shape(), name=f"{prefix}_{n}") for n, expr in enumerate(exprs)]


def _chain(m: Module, i: stream.Interface, o: stream.Interface, loads: list[list]) -> None:
    """Drive the valid/ready handshake of a register pipeline.

    ``loads[k]`` are the assignments that fill stage ``k`` from stage ``k - 1`` (``i.payload``
    for the first); the last stage's registers are ``o.payload``. Stage ``k`` loads when it is
    empty or stage ``k + 1`` loads (``o.ready`` after the last), so a stalled output holds its
    payload and an empty stage never blocks the ones before it.
    """
    depth = len(loads)
    valid = [i.valid] + [Signal(name=f"stage{k}_valid") for k in range(1, depth)] + [o.valid]
    load = [None] + [Signal(name=f"stage{k}_load") for k in range(1, depth + 1)]
    downstream = o.ready
    for k in range(depth, 0, -1):
        m.d.comb += load[k].eq(~valid[k] | downstream)
        downstream = load[k]
    m.d.comb += i.ready.eq(load[1])
    for k in range(1, depth + 1):
        with m.If(load[k]):
            m.d.sync += valid[k].eq(valid[k - 1])
            m.d.sync += loads[k - 1]


class _Handshake:
    """The valid / ready pair of a register stage that is not a stream (the output
    transform's accumulators), for :func:`_chain`."""

    def __init__(self, valid, ready):
        self.valid, self.ready = valid, ready


class InputTransform(wiring.Component):
    """Input transform ``V = BT d BT^T`` of one channel patch per cycle, shifts and adds only.

    Two pipeline stages: the 1-D transform of every row of ``d`` (``W = d BT^T``), then of every
    column of ``W`` (``V = BT W``), each registered. ``V`` has ``config.widths.v`` bits, the
    exact worst case, so it cannot overflow.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Tile (transform matrix ``BT``), data width and derived widths.

    Members
    -------
    i : In(stream.Signature(to_layout(golden.protocol.patch_spec(config))))
        Input patches ``d``, row-major (element ``p * alpha + q``).
    o : Out(stream.Signature(to_layout(golden.protocol.v_spec(config))))
        Transformed tiles ``V``, row-major.
    """

    def __init__(self, config: AcceleratorConfig):
        self._config = _check_config(config)
        super().__init__({
            "i": In(stream.Signature(to_layout(patch_spec(config)))),
            "o": Out(stream.Signature(to_layout(v_spec(config)))),
        })

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator configuration."""
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its output being valid when never stalled."""
        return 2

    def elaborate(self, platform):
        m = Module()
        config = self._config
        alpha, bt, v_width = config.alpha, config.BT, config.widths.v
        d = [[self.i.payload[p * alpha + q] for q in range(alpha)] for p in range(alpha)]

        # Stage 1: W[p] = BT d[p] for every row p of d (each position's exact width).
        rows_next = [_capped(w, v_width) for p in range(alpha)
                     for w in linear_transform(m, bt, d[p], name=f"row{p}")]
        rows = _registers("rows", rows_next)
        w = [[rows[p * alpha + j] for j in range(alpha)] for p in range(alpha)]

        # Stage 2: V[:, j] = BT W[:, j] for every column j, in widths.v bits (row-major).
        columns = [linear_transform(m, bt, [w[p][j] for p in range(alpha)], v_width,
                                    name=f"column{j}")
                   for j in range(alpha)]
        v_next = [columns[j][r] for r in range(alpha) for j in range(alpha)]

        _chain(m, self.i, self.o, [
            [reg.eq(expr) for reg, expr in zip(rows, rows_next)],
            [self.o.payload[n].eq(expr) for n, expr in enumerate(v_next)],
        ])
        return m


class OutputTransform(wiring.Component):
    """Output transform ``Y = AT M AT^T + bias``, optionally requantised to int8 (+ ReLU).

    Two multiplier-free stages, the 1-D transform of every row of ``M`` (``Z = M AT^T``, the
    bias added to the row that AT's all-ones column weights) then of every column of ``Z``
    (``Y = AT Z``, ``config.widths.output`` bits, the exact worst case). With
    ``config.requant`` three more stages compute ``golden.quant.requantize`` exactly: the
    product ``y * mult`` (``m**2`` multipliers, the only ones in this unit), the arithmetic
    shift ``t = (2 * product) >> shift``, then ``(t + 1) >> 1`` (the rounding) clamped to int8
    and the ReLU.

    With ``config.drain_positions`` below ``alpha**2`` a channel comes in ``drain_beats``
    beats of ``drain_width`` positions (beat ``g``: positions ``g * drain_width ..``) and two
    other stages replace the row and column stages: the terms ``AT[i, x] AT[j, y] M[x, y]`` of
    the beat's positions summed for every output ``Y[i, j]`` (shifts and adds), then ``m**2``
    accumulators that add them (the bias with the first beat); the last beat's sums are the
    output (or the requant stages' input). Every sum is kept modulo ``2**widths.output``:
    exact, as ``Y`` fits that width.

    Parameters
    ----------
    config : golden.config.AcceleratorConfig
        Tile (transform matrix ``AT``), widths and whether the requant stage exists.

    Members
    -------
    i : In(stream.Signature(to_layout(golden.protocol.output_transform_input_spec(config))))
        One output channel's ``m`` tile (Winograd domain), ``bias`` and, with requant,
        ``mult``, ``shift``, ``relu``; with ``drain_positions`` below ``alpha**2`` one beat of
        it and its index ``beat``.
    o : Out(stream.Signature(to_layout(golden.protocol.result_spec(config))))
        The output tile ``y`` (row-major, ``m x m``) and, with requant, ``q``.
    """

    def __init__(self, config: AcceleratorConfig):
        self._config = _check_config(config)
        super().__init__({
            "i": In(stream.Signature(to_layout(output_transform_input_spec(config)))),
            "o": Out(stream.Signature(to_layout(result_spec(config)))),
        })

    @property
    def config(self) -> AcceleratorConfig:
        """The accelerator configuration."""
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from an input transfer (a channel's last beat) to its output being valid when
        never stalled."""
        return 5 if self._config.requant else 2

    def elaborate(self, platform):
        m = Module()
        config = self._config
        if config.drain_beats > 1:
            self._accumulate_beats(m)
            return m
        alpha, size, at = config.alpha, config.m, config.AT
        y_width = config.widths.output
        payload = self.i.payload
        tile = [[payload.m[x * alpha + y] for y in range(alpha)] for x in range(alpha)]

        # Stage 1: Z[x] = AT M[x] for every row x of M, plus the bias in row ``ones``: AT's
        # column ``ones`` is all ones, so AT Z then adds the bias to every output (m adders
        # instead of m**2). The requant fields ride along.
        ones = _all_ones_column(at)
        with_bias = np.concatenate([at, np.ones((size, 1), dtype=at.dtype)], axis=1)
        z_next = [_capped(z, y_width) for x in range(alpha)
                  for z in (linear_transform(m, with_bias, tile[x] + [payload.bias],
                                             name=f"row{x}") if x == ones
                            else linear_transform(m, at, tile[x], name=f"row{x}"))]
        z_regs = _registers("rows", z_next)
        z = [[z_regs[x * size + j] for j in range(size)] for x in range(alpha)]
        stage1 = [reg.eq(expr) for reg, expr in zip(z_regs, z_next)]

        # Stage 2: Y[:, j] = AT Z[:, j] for every column j, in widths.output bits (row-major).
        columns = [linear_transform(m, at, [z[x][j] for x in range(alpha)], y_width,
                                    name=f"column{j}")
                   for j in range(size)]
        y_next = [columns[j][r] for r in range(size) for j in range(size)]

        if not config.requant:
            _chain(m, self.i, self.o, [
                stage1,
                [self.o.payload.y[n].eq(expr) for n, expr in enumerate(y_next)],
            ])
            return m

        stages = self._requant_stages(payload, stage1, y_next)
        _chain(m, self.i, self.o, stages)
        return m

    def _accumulate_beats(self, m: Module) -> None:
        """The term and accumulator stages of a design with ``drain_positions`` below
        ``alpha**2`` (see the class docstring), then the requant stages when present."""
        config = self._config
        alpha, size, at = config.alpha, config.m, config.AT
        lanes, beats, y_width = config.drain_width, config.drain_beats, config.widths.output
        payload = self.i.payload
        names = ("mult", "shift", "relu") if config.requant else ()

        # Stage 1: every output's term of the beat, registered (the accumulator's adder then
        # has a register on each input), with the beat's first / last flags and fields.
        # A term is kept with its sign apart (``negate``: the accumulator subtracts it), so
        # that a row and its negative share one sum and no term needs a negation's carry
        # chain after its sum's.
        terms = [Signal(signed(y_width), name=f"term_{n}") for n in range(size * size)]
        negates = [Signal(name=f"term_negate_{n}") for n in range(size * size)]
        term_loads = []
        for n, (reg, negate) in enumerate(zip(terms, negates)):
            i, j = divmod(n, size)
            # The coefficients of beat g's lanes in Y[i, j], each row as a sign and a row whose
            # first nonzero coefficient is positive: the distinct rows become one
            # shift-and-add sum each, and the beat selects one of them and its sign.
            rows, signs = zip(*(_sign_folded(
                int(at[i, xi // alpha] * at[j, xi % alpha])
                for xi in range(g * lanes, (g + 1) * lanes)) for g in range(beats)))
            distinct = sorted(set(rows))
            sums = [_capped(v, y_width) for v in linear_transform(
                m, distinct, [payload.m[p] for p in range(lanes)], name=f"beat{i}_{j}")]
            if len(sums) == 1:
                term = sums[0]
            else:
                choice = Array(Const(distinct.index(row), range(len(distinct))) for row in rows)
                term = Array(sums)[choice[payload.beat]]
            sign = Const(0) if not any(signs) else Array(Const(s, 1) for s in signs)[payload.beat]
            term_loads += [reg.eq(term), negate.eq(sign)]
        term_valid, term_first, term_last = (Signal(name=f"term_{s}")
                                             for s in ("valid", "first", "last"))
        term_fields = {f: Signal.like(payload[f], name=f"term_{f}") for f in ("bias", *names)}
        term_loads += [term_first.eq(payload.beat == 0), term_last.eq(payload.beat == beats - 1)]
        term_loads += [term_fields[f].eq(payload[f]) for f in term_fields]

        # Stage 2: the accumulators, holding a whole channel from its last beat until the next
        # stage (the output, or the first requant stage) takes it.
        acc = [Signal(signed(y_width), name=f"acc_{n}") for n in range(size * size)]
        full, taken, accumulate = Signal(), Signal(), Signal()
        m.d.comb += [accumulate.eq(term_valid & (~full | taken)),
                     self.i.ready.eq(~term_valid | accumulate)]
        with m.If(self.i.ready):
            m.d.sync += [term_valid.eq(self.i.valid)] + term_loads
        base = [Mux(term_first, term_fields["bias"], reg) for reg in acc]
        with m.If(accumulate):
            m.d.sync += [reg.eq(_capped(Mux(negate, b - t, b + t), y_width))
                         for reg, b, t, negate in zip(acc, base, terms, negates)]
            m.d.sync += full.eq(term_last)
        with m.Elif(taken):
            m.d.sync += full.eq(0)
        if not config.requant:
            m.d.comb += [self.o.valid.eq(full), taken.eq(self.o.ready)]
            m.d.comb += [self.o.payload.y[n].eq(reg) for n, reg in enumerate(acc)]
            return
        params = {f: Signal.like(payload[f], name=f"acc_{f}") for f in names}
        with m.If(accumulate & term_last):
            m.d.sync += [params[f].eq(term_fields[f]) for f in names]
        y_regs = [[Signal(signed(y_width), name=f"{stage}_y_{n}") for n in range(size * size)]
                  for stage in ("product", "halves")]
        carried = [{f: Signal.like(payload[f], name=f"{stage}_{f}") for f in names}
                   for stage in ("product", "halves")]
        stages = self._requant_tail(acc, [params, *carried], y_regs[1])
        stages[0] += ([b.eq(a) for a, b in zip(acc, y_regs[0])]
                      + [carried[0][f].eq(params[f]) for f in names])
        stages[1] += ([b.eq(a) for a, b in zip(y_regs[0], y_regs[1])]
                      + [carried[1][f].eq(carried[0][f]) for f in names])
        _chain(m, _Handshake(full, taken), self.o, stages)

    def _requant_stages(self, payload, stage1, y_next) -> list[list]:
        """Stages 1-5 with requantisation: q = clamp((y * mult + round) >> shift), ReLU."""
        count = len(y_next)
        names = ("mult", "shift", "relu")

        def carry(stage):
            return {f: Signal.like(payload[f], name=f"{stage}_{f}") for f in names}

        params = [carry("rows"), carry("cols"), carry("product"), carry("halves")]
        stages = [stage1 + [params[0][f].eq(payload[f]) for f in names]]
        for k in range(1, 4):
            stages.append([params[k][f].eq(params[k - 1][f]) for f in names])

        # Stage 2: Y, kept for the result beat through the following stages.
        y_regs = [[Signal(signed(self._config.widths.output), name=f"{stage}_y_{n}")
                   for n in range(count)] for stage in ("cols", "product", "halves")]
        stages[1] += [reg.eq(expr) for reg, expr in zip(y_regs[0], y_next)]
        stages[2] += [b.eq(a) for a, b in zip(y_regs[0], y_regs[1])]
        stages[3] += [b.eq(a) for a, b in zip(y_regs[1], y_regs[2])]
        tail = self._requant_tail(y_regs[0], params[1:], y_regs[2])
        stages[2] += tail[0]
        stages[3] += tail[1]
        stages.append(tail[2])
        return stages

    def _requant_tail(self, y, params, y_final) -> list[list]:
        """The loads of the three requant stages (product, halves, output) from ``y`` and
        their parameters ``params`` (of the stage before the product, of the product stage
        and of the halves stage); ``y_final`` is ``y`` carried to the output stage."""
        out = self.o.payload
        stages = [[], [], []]

        # Stage 3: the product (the only multipliers of the unit).
        product_next = [value * params[0]["mult"] for value in y]
        products = _registers("product", product_next)
        stages[0] += [reg.eq(expr) for reg, expr in zip(products, product_next)]

        # Stage 4: t = (2 * product) >> shift (arithmetic), so that golden's rounded
        # (product + 2**(shift-1)) >> shift equals (t + 1) >> 1 for every shift, 0 included:
        # a barrel shifter here, and only a narrow increment after it.
        shift = params[1]["shift"]
        halves_next = [(p.as_signed() << 1) >> shift for p in products]
        halves = _registers("halves", halves_next)
        stages[1] += [reg.eq(expr) for reg, expr in zip(halves, halves_next)]

        # Stage 5: clamp (t + 1) >> 1 to int8, then ReLU (golden clamps first). The bounds
        # are tested on t itself: (t + 1) >> 1 > q_max iff t >= 2 * q_max + 1, and
        # (t + 1) >> 1 < q_min iff t < 2 * q_min - 1; in range, t's low bits suffice.
        relu = params[2]["relu"]
        q_shape = self.o.payload.q.shape().elem_shape
        q_min, q_max = signed_range(q_shape.width)
        final = []
        for n, half in enumerate(halves):
            width = half.shape().width
            rounded = ((half[:q_shape.width + 1] + 1) >> 1)[:q_shape.width].as_signed()
            clamped = Mux(half >= Const(2 * q_max + 1, signed(width)), Const(q_max, q_shape),
                          Mux(half < Const(2 * q_min - 1, signed(width)), Const(q_min, q_shape),
                              rounded))
            final.append(out.q[n].eq(Mux(relu & clamped[-1], Const(0, q_shape), clamped)))
            final.append(out.y[n].eq(y_final[n]))
        stages[2] = final
        return stages

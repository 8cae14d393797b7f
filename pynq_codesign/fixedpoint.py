"""The one definition of fixed-point formats, rounding and saturation.

Every part of pynq-codesign that turns a real number or a wide accumulator into a
fixed-point code uses this module: the torch fake-quantiser (host), the bit-exact
emulator (board), the HLS C++ (through the generated header, which names the
``ap_fixed`` modes below) and the QONNX export.

Conventions
-----------
* A :class:`FixedFormat` is ``ap_fixed<bits, int_bits>`` (signed) or
  ``ap_ufixed<bits, int_bits>``: ``frac = bits - int_bits`` fractional bits, so a
  code ``q`` stands for the real value ``q * 2**-frac``. ``int_bits`` counts the
  sign bit, as in ``ap_fixed``; it may be negative or exceed ``bits``.
* Rounding is one of four modes that ap_fixed, QONNX ``Quant`` and torch can all
  express (:data:`AP_QUANT`, :data:`QONNX_ROUNDING`).
* Overflow always saturates (``AP_SAT``); with ``narrow`` the range is symmetric
  (``AP_SAT_SYM``: the most negative code is left out).
* Scaling is always a power of two. Batch norm is folded into weights and bias
  before export (:func:`fold_batch_norm`); the bias of a layer is stored at the
  accumulator's scale (:func:`bias_format`).
* References compute in int64 or float64, never float32.

:data:`GOLDEN` is the table of cases (ties, negatives, saturation edges) that the
torch fake-quantiser, the numpy emulator and the C++ are all tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable

import numpy as np

#: Widest code any part handles; int64 arithmetic stays exact below this.
MAX_BITS = 32


class Rounding(str, Enum):
    """Rounding modes, named for what they do."""

    HALF_EVEN = "half_even"      # ties to even          AP_RND_CONV  / QONNX ROUND   / torch.round
    FLOOR = "floor"              # toward -inf           AP_TRN       / QONNX FLOOR   / torch.floor
    HALF_AWAY = "half_away"      # ties away from zero   AP_RND_INF   / QONNX HALF_UP
    TOWARD_ZERO = "toward_zero"  # truncate toward zero  AP_TRN_ZERO  / QONNX DOWN    / torch.trunc


#: ap_fixed quantisation mode for each rounding mode.
AP_QUANT = {
    Rounding.HALF_EVEN: "AP_RND_CONV",
    Rounding.FLOOR: "AP_TRN",
    Rounding.HALF_AWAY: "AP_RND_INF",
    Rounding.TOWARD_ZERO: "AP_TRN_ZERO",
}

#: QONNX ``Quant`` ``rounding_mode`` attribute for each rounding mode.
QONNX_ROUNDING = {
    Rounding.HALF_EVEN: "ROUND",
    Rounding.FLOOR: "FLOOR",
    Rounding.HALF_AWAY: "HALF_UP",
    Rounding.TOWARD_ZERO: "DOWN",
}

#: Small integer id of each mode, as the generated C++ header and descriptors use it.
ROUNDING_ID = {Rounding.HALF_EVEN: 0, Rounding.FLOOR: 1, Rounding.HALF_AWAY: 2,
               Rounding.TOWARD_ZERO: 3}


def ap_overflow(narrow: bool) -> str:
    """ap_fixed overflow mode: always saturating, symmetric when ``narrow``."""
    return "AP_SAT_SYM" if narrow else "AP_SAT"


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point format: ``bits`` in all, ``int_bits`` of them integer (sign included)."""

    bits: int
    int_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.bits, int) and 1 <= self.bits <= MAX_BITS):
            raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {self.bits!r}")
        if not isinstance(self.int_bits, int) or abs(self.int_bits) > 64:
            raise ValueError(f"int_bits must be an integer in -64..64, got {self.int_bits!r}")
        if self.signed and self.bits < 2:
            raise ValueError("a signed format needs at least 2 bits")

    @property
    def frac(self) -> int:
        """Fractional bits: a code q means q * 2**-frac."""
        return self.bits - self.int_bits

    @property
    def scale(self) -> float:
        """The real value of one code step (2**-frac)."""
        return float(2.0 ** -self.frac)

    def code_min(self, narrow: bool = False) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + (1 if narrow else 0)

    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def real_min(self, narrow: bool = False) -> float:
        return self.code_min(narrow) * self.scale

    def real_max(self) -> float:
        return self.code_max() * self.scale

    def ap_type(self, rounding: Rounding | str, narrow: bool = False) -> str:
        """The C++ type, e.g. ``ap_fixed<8,4,AP_RND_CONV,AP_SAT>``."""
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        q = AP_QUANT[Rounding(rounding)]
        return f"{kind}<{self.bits},{self.int_bits},{q},{ap_overflow(narrow)}>"

    def to_dict(self) -> dict:
        return {"bits": self.bits, "int_bits": self.int_bits, "signed": self.signed}

    @classmethod
    def from_dict(cls, d: dict) -> "FixedFormat":
        return cls(bits=d["bits"], int_bits=d["int_bits"], signed=d.get("signed", True))

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}fixed<{self.bits},{self.int_bits}>"


# ---------------------------------------------------------------------------
# Integer kernels (int64): what the accelerator's requantiser does.
# ---------------------------------------------------------------------------

def shift_round(x: np.ndarray | int, shift: int, rounding: Rounding | str) -> np.ndarray:
    """Divide integer codes by ``2**shift`` with the given rounding (int64 in, int64 out).

    ``shift <= 0`` multiplies by ``2**-shift`` exactly (no rounding needed).
    """
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << np.int64(-shift)
    mode = Rounding(rounding)
    s = np.int64(shift)
    q = x >> s                      # floor
    if mode is Rounding.FLOOR:
        return q
    r = x - (q << s)                # remainder, 0 <= r < 2**shift
    if mode is Rounding.TOWARD_ZERO:
        return q + ((x < 0) & (r != 0))
    half = np.int64(1) << (s - 1)
    if mode is Rounding.HALF_AWAY:
        return q + ((r > half) | ((r == half) & (x >= 0)))
    # HALF_EVEN
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def saturate(codes: np.ndarray | int, fmt: FixedFormat, narrow: bool = False) -> np.ndarray:
    """Clamp integer codes to ``fmt``'s range (int64)."""
    return np.clip(np.asarray(codes, dtype=np.int64), fmt.code_min(narrow), fmt.code_max())


def requantize(acc: np.ndarray | int, acc_frac: int, fmt: FixedFormat,
               rounding: Rounding | str, narrow: bool = False) -> np.ndarray:
    """An integer ``acc`` at ``2**-acc_frac`` scale, rounded and saturated into ``fmt``'s codes."""
    return saturate(shift_round(acc, acc_frac - fmt.frac, rounding), fmt, narrow)


def round_real(x: np.ndarray, rounding: Rounding | str) -> np.ndarray:
    """Round float64 values to integers with the given mode (float64 out)."""
    x = np.asarray(x, dtype=np.float64)
    mode = Rounding(rounding)
    if mode is Rounding.HALF_EVEN:
        return np.round(x)
    if mode is Rounding.FLOOR:
        return np.floor(x)
    if mode is Rounding.TOWARD_ZERO:
        return np.trunc(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray | float, fmt: FixedFormat, rounding: Rounding | str,
             narrow: bool = False) -> np.ndarray:
    """Real values (float64) to integer codes of ``fmt`` (int64)."""
    scaled = np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac)
    lo, hi = fmt.code_min(narrow), fmt.code_max()
    return np.clip(round_real(scaled, rounding), lo, hi).astype(np.int64)


def dequantize(codes: np.ndarray | int, fmt: FixedFormat) -> np.ndarray:
    """Integer codes of ``fmt`` to their real values (float64, exact)."""
    return np.asarray(codes, dtype=np.float64) * fmt.scale


def fake_quantize(x: np.ndarray | float, fmt: FixedFormat, rounding: Rounding | str,
                  narrow: bool = False) -> np.ndarray:
    """Quantise then dequantise (float64): the value the hardware would hold."""
    return dequantize(quantize(x, fmt, rounding, narrow), fmt)


# ---------------------------------------------------------------------------
# Layer-level conventions shared by training, export and the accelerator.
# ---------------------------------------------------------------------------

def bias_format(in_fmt: FixedFormat, weight_fmt: FixedFormat, bias_bits: int) -> FixedFormat:
    """The bias is stored at the accumulator's scale: frac = in.frac + weight.frac.

    It is added to the accumulator without shifting, so the hardware needs no
    bias alignment; ``bias_bits`` (an overlay parameter) bounds its range.
    """
    frac = in_fmt.frac + weight_fmt.frac
    return FixedFormat(bits=bias_bits, int_bits=bias_bits - frac, signed=True)


def acc_frac(in_fmt: FixedFormat, weight_fmt: FixedFormat) -> int:
    """Fractional bits of a layer's accumulator (products of input and weight codes)."""
    return in_fmt.frac + weight_fmt.frac


def fold_batch_norm(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray,
                    beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                    eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Fold a batch norm after a convolution into its weights and bias (float64).

    ``weight`` has the output channel first (``[out, ...]``, also for depthwise).
    """
    w = np.asarray(weight, dtype=np.float64)
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    w_f = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    b_f = (b - np.asarray(mean, np.float64)) * s + np.asarray(beta, np.float64)
    return w_f, b_f


def int_bits_for(max_abs: float, bits: int, signed: bool = True) -> int:
    """The fewest integer bits (sign included) that hold ``max_abs`` without saturating.

    Used to pick a layer's power-of-two scaling from observed ranges.
    """
    if max_abs <= 0:
        return 1 if signed else 0
    need = int(np.floor(np.log2(max_abs))) + 1 + (1 if signed else 0)
    fmt = FixedFormat(bits, need, signed)
    if max_abs > fmt.real_max():  # the top code is one LSB short of 2**(int_bits-1)
        need += 1
    return need


def container_bytes(bits: int) -> int:
    """Bytes of the integer container a code of ``bits`` travels in (1, 2 or 4)."""
    for n in (1, 2, 4):
        if bits <= 8 * n:
            return n
    raise ValueError(f"no container for {bits} bits")


def container_dtype(bits: int, signed: bool = True) -> np.dtype:
    """numpy dtype of the container for ``bits``-wide codes (little-endian)."""
    n = container_bytes(bits)
    return np.dtype(f"<{'i' if signed else 'u'}{n}")


# ---------------------------------------------------------------------------
# The golden table.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GoldenCase:
    """One case: the exact value ``num * 2**-num_frac`` into ``fmt`` gives ``expect``."""

    num: int
    num_frac: int
    fmt: FixedFormat
    rounding: Rounding
    narrow: bool
    expect: int

    @property
    def value(self) -> float:
        return float(self.num) * 2.0 ** -self.num_frac


def _cases() -> Iterable[GoldenCase]:
    s8 = FixedFormat(8, 4)           # step 1/16, codes -128..127
    u8 = FixedFormat(8, 4, signed=False)
    s16 = FixedFormat(16, 2)
    s3 = FixedFormat(3, 3)           # integers -4..3
    H, F, A, Z = Rounding.HALF_EVEN, Rounding.FLOOR, Rounding.HALF_AWAY, Rounding.TOWARD_ZERO
    # Values as numerators at frac 6 (step 1/64) going into s8 (frac 4): shift of 2 bits.
    table = [
        # num, expect for (H, F, A, Z)
        (0, (0, 0, 0, 0)),
        (2, (0, 0, 1, 0)),        # +0.5 LSB: tie
        (-2, (0, -1, -1, 0)),     # -0.5 LSB: tie
        (6, (2, 1, 2, 1)),        # +1.5 LSB: tie, even is 2
        (-6, (-2, -2, -2, -1)),   # -1.5 LSB
        (10, (2, 2, 3, 2)),       # +2.5 LSB: even is 2
        (-10, (-2, -3, -3, -2)),  # -2.5 LSB
        (1, (0, 0, 0, 0)),        # +0.25 LSB
        (-1, (0, -1, 0, 0)),      # -0.25 LSB
        (3, (1, 0, 1, 0)),        # +0.75 LSB
        (-3, (-1, -1, -1, 0)),    # -0.75 LSB
        (508, (127, 127, 127, 127)),    # exactly the top code
        (510, (127, 127, 127, 127)),    # 127.5 -> saturates where it rounds up
        (512, (127, 127, 127, 127)),    # 128: one past the top
        (-512, (-128, -128, -128, -128)),  # exactly the bottom code
        (-514, (-128, -128, -128, -128)),  # below the bottom
        (100000, (127, 127, 127, 127)),
        (-100000, (-128, -128, -128, -128)),
    ]
    modes = (H, F, A, Z)
    for num, expects in table:
        for mode, e in zip(modes, expects):
            yield GoldenCase(num, 6, s8, mode, False, e)
    # Narrow range (AP_SAT_SYM): the bottom code -128 is left out.
    for mode in modes:
        yield GoldenCase(-512, 6, s8, mode, True, -127)
        yield GoldenCase(-100000, 6, s8, mode, True, -127)
        yield GoldenCase(508, 6, s8, mode, True, 127)
    # Unsigned: negatives saturate to 0, the top is 255.
    for mode in modes:
        yield GoldenCase(-2, 6, u8, mode, False, 0)
        yield GoldenCase(-64, 6, u8, mode, False, 0)
        yield GoldenCase(1020, 6, u8, mode, False, 255)
        yield GoldenCase(5000, 6, u8, mode, False, 255)
    yield GoldenCase(1018, 6, u8, H, False, 254)   # 254.5 -> even 254
    yield GoldenCase(1018, 6, u8, A, False, 255)
    # A wide accumulator into a 16-bit format (shift 14), ties and edges.
    for num, expects in [
        (1 << 13, (0, 0, 1, 0)),
        (3 << 13, (2, 1, 2, 1)),
        (-(3 << 13), (-2, -2, -2, -1)),
        ((32767 << 14) + (1 << 13), (32767, 32767, 32767, 32767)),
        (-(32768 << 14) - 1, (-32768, -32768, -32768, -32768)),
        ((12345 << 14) + 1, (12345, 12345, 12345, 12345)),
        (-(12345 << 14) - 1, (-12345, -12346, -12345, -12345)),
    ]:
        for mode, e in zip(modes, expects):
            yield GoldenCase(num, 14 + s16.frac, s16, mode, False, e)
    # Left shift (the value has fewer fractional bits than the format) and tiny formats.
    for mode in modes:
        yield GoldenCase(3, 0, s8, mode, False, 48)     # 3.0 -> 48/16
        yield GoldenCase(9, 0, s8, mode, False, 127)    # 9.0 saturates
        yield GoldenCase(7, 1, s3, mode, False, 3)      # 3.5 -> saturates at 3
        yield GoldenCase(-9, 1, s3, mode, False, -4)    # -4.5 -> saturates at -4
    yield GoldenCase(5, 1, s3, H, False, 2)             # 2.5 -> 2
    yield GoldenCase(5, 1, s3, A, False, 3)
    yield GoldenCase(-5, 1, s3, H, False, -2)
    yield GoldenCase(-5, 1, s3, F, False, -3)
    yield GoldenCase(-5, 1, s3, Z, False, -2)
    yield GoldenCase(-5, 1, s3, A, False, -3)


#: The golden table. Each consumer checks: requantize(num, num_frac, fmt, ...) == expect,
#: and quantize(num * 2**-num_frac, fmt, ...) == expect.
GOLDEN: tuple[GoldenCase, ...] = tuple(_cases())

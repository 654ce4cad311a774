"""HyperLogLog: an approximate count of distinct 64-bit hashes in a fixed 4 KiB.

Flajolet, Fusy, Gandouet, Meunier, "HyperLogLog: the analysis of a near-optimal cardinality
estimation algorithm" (AofA 2007), with the small-range correction by linear counting of that
paper. Precision p = 12 gives m = 4096 one-byte registers and a standard error of
1.04 / sqrt(m) = 1.6 % (so within ±3.2 % for 95 % of keys). Registers merge by maximum, so the
union of two sketches is exact as a sketch (no extra error).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["HLL_ERROR", "HLL_P", "HyperLogLog"]

HLL_P = 12
_M = 1 << HLL_P
HLL_ERROR = 1.04 / math.sqrt(_M)  # relative standard error, 0.01625
_ALPHA = 0.7213 / (1 + 1.079 / _M)
_MASK64 = (1 << 64) - 1


class HyperLogLog:
    """A sketch of a set of 64-bit hashes (``add``), its estimated size (``count``)."""

    __slots__ = ("registers",)

    def __init__(self, registers: bytes | bytearray | None = None) -> None:
        self.registers = bytearray(registers) if registers is not None else bytearray(_M)
        if len(self.registers) != _M:
            raise ValueError(f"a HyperLogLog has {_M} registers, not {len(self.registers)}")

    @classmethod
    def of(cls, hashes: Iterable[int]) -> HyperLogLog:
        sketch = cls()
        for h in hashes:
            sketch.add(h)
        return sketch

    def add(self, h: int) -> None:
        """Add a 64-bit hash (uniformly distributed bits, e.g. from blake2b)."""
        h &= _MASK64
        index = h >> (64 - HLL_P)
        rest = (h << HLL_P) & _MASK64
        rank = 64 - HLL_P + 1 if rest == 0 else (64 - rest.bit_length()) + 1
        self.registers[index] = max(self.registers[index], rank)

    def merge(self, other: HyperLogLog) -> None:
        """Make this sketch the union of itself and ``other``."""
        r = self.registers
        for i, v in enumerate(other.registers):
            r[i] = max(r[i], v)

    def count(self) -> int:
        """Estimated number of distinct hashes added (relative standard error ``HLL_ERROR``)."""
        r = self.registers
        total = math.fsum(2.0 ** -v for v in r)
        estimate = _ALPHA * _M * _M / total
        zeros = r.count(0)
        if estimate <= 2.5 * _M and zeros:
            estimate = _M * math.log(_M / zeros)  # linear counting for small sets
        return round(estimate)

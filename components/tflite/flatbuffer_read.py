"""Reads fields of a flatbuffer table by slot number, for schemas that have no generated Python code here.

A table's field with slot n is found through its vtable at byte 4 + 2n (the
flatbuffers binary format); absent fields read as empty. Only what detx reads
back from TFLite Metadata (metadata.py) is here: strings, float vectors,
sub-tables and vectors of tables.
"""

from __future__ import annotations

import flatbuffers  # type: ignore[import-untyped]
from flatbuffers import number_types, table


class FlatbufferError(ValueError):
    """The bytes are not a flatbuffer of the expected schema."""


class Table:
    """One table of a flatbuffer."""

    def __init__(self, buf: bytearray, pos: int) -> None:
        self._t = table.Table(buf, pos)

    def _offset(self, slot: int) -> int:
        return int(self._t.Offset(4 + 2 * slot))

    def string(self, slot: int) -> str:
        """A string field ("" when absent)."""
        o = self._offset(slot)
        return bytes(self._t.String(o + self._t.Pos)).decode() if o else ""

    def floats(self, slot: int) -> list[float]:
        """A [float] field ([] when absent)."""
        o = self._offset(slot)
        if not o:
            return []
        start = self._t.Vector(o)
        return [float(self._t.Get(number_types.Float32Flags, start + 4 * i)) for i in range(self._t.VectorLen(o))]

    def table(self, slot: int) -> Table:
        """A sub-table field (or a union's value).

        Raises:
            FlatbufferError: the field is absent.
        """
        o = self._offset(slot)
        if not o:
            raise FlatbufferError(f"table field {slot} is absent")
        return Table(self._t.Bytes, self._t.Indirect(o + self._t.Pos))

    def tables(self, slot: int) -> list[Table]:
        """A [table] field ([] when absent)."""
        o = self._offset(slot)
        if not o:
            return []
        start = self._t.Vector(o)
        return [Table(self._t.Bytes, self._t.Indirect(start + 4 * i)) for i in range(self._t.VectorLen(o))]


def root(buf: bytes, identifier: bytes) -> Table:
    """The root table of `buf`, which must carry the 4-byte file `identifier`.

    Raises:
        FlatbufferError: another identifier (another schema), or too short.
    """
    data = bytearray(buf)
    if len(data) < 8 or bytes(data[4:8]) != identifier:
        raise FlatbufferError(f"not a flatbuffer with identifier {identifier.decode()}")
    return Table(data, int(flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0)))

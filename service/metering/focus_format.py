"""The FOCUS 1.2 columns this export writes, their types, and the CSV and Parquet encoders.

Both formats carry the same columns and values. Money and quantities are Decimal end to end:
Parquet decimal128 columns at a fixed scale, CSV plain decimal strings at that same scale (never
an exponent, never a float). A value that does not fit its column's scale exactly is an error,
not a rounding. Date/times are UTC: Parquet timestamps, CSV `YYYY-MM-DDTHH:MM:SSZ`. A null is an
empty CSV field and a Parquet null.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

from service.metering.focus_skus import EXACT

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

Value = Decimal | str | datetime | bool | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # decimal | string | datetime | bool
    scale: int = 0  # decimals, for decimal columns
    nullable: bool = False


def _money(name: str, scale: int = 10) -> Column:
    return Column(name, "decimal", scale)


def _text(name: str, nullable: bool = False) -> Column:
    return Column(name, "string", nullable=nullable)


def _time(name: str) -> Column:
    return Column(name, "datetime")


# FOCUS columns first (alphabetical, as the spec allows), then this provider's x_ columns.
COLUMNS: tuple[Column, ...] = (
    _money("BilledCost"),
    _text("BillingAccountId"),
    _text("BillingAccountName"),
    _text("BillingCurrency"),
    _time("BillingPeriodEnd"),
    _time("BillingPeriodStart"),
    _text("ChargeCategory"),
    _text("ChargeClass", nullable=True),
    _text("ChargeDescription"),
    _text("ChargeFrequency"),
    _time("ChargePeriodEnd"),
    _time("ChargePeriodStart"),
    # Counts of tokens or calls, written with one decimal so a CSV reader infers a decimal
    # column (FOCUS types it Decimal), not an integer one.
    Column("ConsumedQuantity", "decimal", 1),
    _text("ConsumedUnit"),
    _money("ContractedCost"),
    _money("EffectiveCost"),
    _text("InvoiceId", nullable=True),  # usage is not invoiced by the gateway: always null
    _text("InvoiceIssuerName"),
    # A list unit price has at most 10 decimals and a token quantity 6 (millions of tokens), so
    # their product, the list cost, always fits 16.
    _money("ListCost", 16),
    Column("ListUnitPrice", "decimal", 10),
    _text("PricingCategory"),
    Column("PricingQuantity", "decimal", 10),
    _text("PricingUnit"),
    _text("ProviderName"),
    _text("PublisherName"),
    _text("ServiceCategory"),
    _text("ServiceName"),
    _text("ServiceSubcategory"),
    _text("SkuId"),
    _text("SkuMeter"),
    _text("SkuPriceDetails", nullable=True),
    _text("SkuPriceId"),
    _text("SubAccountId"),
    _text("SubAccountName"),
    _text("Tags", nullable=True),
    Column("x_Estimated", "bool"),
    _text("x_FrontEnd"),
    _text("x_Model"),
    _text("x_ProjectId", nullable=True),
    _text("x_ProjectName", nullable=True),
    _text("x_TokenKind"),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
PRECISION = 38  # decimal128's widest

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}

Row = Sequence[Value]  # values in COLUMNS order


def exact(value: Decimal, scale: int) -> Decimal:
    """`value` at `scale` decimals; raises decimal.Inexact rather than round."""
    return value.quantize(_QUANTA[scale], context=EXACT)


_QUANTA = {scale: Decimal(1).scaleb(-scale) for scale in range(PRECISION + 1)}


def _csv_formatter(column: Column) -> Callable[[Value], str]:
    """One column's value to CSV text; a null is the empty field."""
    if column.type == "decimal":
        quantum = _QUANTA[column.scale]

        def decimal_text(value: Value) -> str:
            if value is None:
                return ""
            if not isinstance(value, Decimal):
                raise TypeError(f"a decimal column got {value!r}")
            return format(value.quantize(quantum, context=EXACT), "f")

        return decimal_text
    if column.type == "datetime":
        return _datetime_text
    if column.type == "bool":
        return lambda value: "" if value is None else ("true" if value else "false")
    return _string_text


def _string_text(value: Value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"a string column got {value!r}")
    return value


@lru_cache(maxsize=4096)
def _datetime_text(value: Value) -> str:
    # Cached: a month's rows share a few hundred distinct period bounds.
    if value is None:
        return ""
    if not isinstance(value, datetime):
        raise TypeError(f"a timestamp column got {value!r}")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CsvEncoder:
    def __init__(self) -> None:
        self._formatters = [_csv_formatter(c) for c in COLUMNS]

    def header(self) -> bytes:
        return self._lines([COLUMN_NAMES])

    def rows(self, rows: Sequence[Row]) -> bytes:
        formatters = self._formatters
        return self._lines([[f(v) for f, v in zip(formatters, row, strict=True)] for row in rows])

    def close(self) -> bytes:
        return b""

    @staticmethod
    def _lines(rows: Sequence[Sequence[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")


class _Chunks(io.RawIOBase):
    """A write-only file that hands back what was written since the last drain."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    def arrow_type(c: Column) -> pa.DataType:
        if c.type == "decimal":
            return pa.decimal128(PRECISION, c.scale)
        if c.type == "datetime":
            return pa.timestamp("ms", tz="UTC")  # Parquet has no seconds unit
        return pa.bool_() if c.type == "bool" else pa.string()

    return pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in COLUMNS])


class ParquetEncoder:
    """Each batch of rows becomes one row group, streamed out as soon as it is written; the
    footer comes with close(). zstd compression, no timestamps in the metadata: a rerun over
    the same rows writes the same bytes."""

    def __init__(self) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema()
        self._sink = _Chunks()
        self._writer: pq.ParquetWriter = pq.ParquetWriter(self._sink, self._schema, compression="zstd")

    def header(self) -> bytes:
        return self._sink.drain()

    def rows(self, rows: Sequence[Row]) -> bytes:
        import pyarrow as pa

        columns = []
        for i, (column, field) in enumerate(zip(COLUMNS, self._schema, strict=True)):
            values = [row[i] for row in rows]
            if column.type == "decimal":
                values = [exact(v, column.scale) if isinstance(v, Decimal) else v for v in values]
            columns.append(pa.array(values, type=field.type))
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))
        return self._sink.drain()

    def close(self) -> bytes:
        self._writer.close()
        return self._sink.drain()


def encoder(fmt: str) -> CsvEncoder | ParquetEncoder:
    return ParquetEncoder() if fmt == "parquet" else CsvEncoder()

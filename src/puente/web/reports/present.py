"""A report as a person reads it: numbers with the locale's separators, durations as
"2 min 5 s", keys in words, the chart's data for the page's script, and a table as CSV
(translated header, durations in seconds as plain numbers)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

from puente.reports.queries import Chart, Column, Figure, Report, Table
from puente.web.inbox.render import FAILURE_REASONS
from puente.web.reports.words import (
    KEYED_COLUMNS,
    SPECIAL_NAMES,
    Translate,
    key_label,
    value_label,
)

CURRENCY = "USD"  # reports/data/rates.json
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
# Spreadsheets run cells starting with these as formulas ("CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NONE = "—"


@dataclass(frozen=True)
class Cell:
    text: str
    kind: str
    raw: Any  # what the cell stands for: seconds, a number, a key


@dataclass(frozen=True)
class TableView:
    key: str
    title: str
    columns: list[tuple[str, str, str]]  # key, label, kind
    rows: list[list[Cell]]
    wide: bool  # too many columns to read as cards on a phone: it scrolls instead


@dataclass(frozen=True)
class FigureView:
    key: str
    label: str
    text: str
    kind: str


class Formats:
    """How values read in one language."""

    def __init__(self, lang: str, gettext: Translate) -> None:
        self.lang = lang
        self._ = gettext
        self.locale = Locale.parse(lang)

    # -- values -------------------------------------------------------------------------

    def number(self, value: float | None) -> str:
        if value is None:
            return NONE
        return str(format_decimal(value, "#,##0.##", locale=self.locale))

    def duration(self, seconds: float | None) -> str:
        """2 min 5 s, 1 h 3 min, 2 d 4 h: the two largest units, to the second."""
        if seconds is None:
            return NONE
        total = round(seconds)
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        _ = self._
        if days:
            parts = [_("%(n)s d") % {"n": days}, _("%(n)s h") % {"n": hours} if hours else ""]
        elif hours:
            parts = [
                _("%(n)s h") % {"n": hours},
                _("%(n)s min") % {"n": minutes} if minutes else "",
            ]
        elif minutes:
            parts = [_("%(n)s min") % {"n": minutes}, _("%(n)s s") % {"n": secs} if secs else ""]
        else:
            parts = [_("%(n)s s") % {"n": secs}]
        return " ".join(p for p in parts if p)

    def percent(self, value: float | None) -> str:
        if value is None:
            return NONE
        return str(format_percent(value, "#,##0.#%", locale=self.locale))

    def money(self, value: float | None) -> str:
        if value is None:
            return NONE
        # A message costs cents and less: keep four decimals below one dollar.
        rounded = round(value, 2) if abs(value) >= 1 else round(value, 4)
        return str(
            format_currency(rounded, CURRENCY, locale=self.locale, decimal_quantization=False)
        )

    def day(self, value: str | dt.date) -> str:
        day = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return str(format_date(day, "medium", locale=self.locale))

    def short_day(self, iso: str) -> str:
        return str(format_skeleton("MMMd", dt.date.fromisoformat(iso), locale=self.locale))

    def month(self, iso: str) -> str:
        first = dt.date.fromisoformat(iso + "-01")
        return str(format_skeleton("yMMMM", first, locale=self.locale))

    def weekday(self, index: str) -> str:
        return str(self.locale.days["format"]["wide"][int(index)]).capitalize()

    def country(self, code: str) -> str:
        if not code:
            return self._("Unknown")
        return str(self.locale.territories.get(code.upper(), code))

    def reason(self, value: str) -> str:
        """Why a broadcast failed (Meta's code) or why a message was free (a key)."""
        if value.isdigit():
            words = FAILURE_REASONS.get(int(value))
            return (
                f"{value} · {self._(words)}"
                if words
                else self._("Error %(code)s") % {"code": value}
            )
        return value_label(self._, value)

    def by_kind(self, kind: str, value: Any) -> str:
        if value is None or value == "":
            return NONE if kind != "text" else ""
        if kind == "seconds":
            return self.duration(float(value))
        if kind == "percent":
            return self.percent(float(value))
        if kind == "money":
            return self.money(float(value))
        if kind == "date":
            return self.day(str(value))
        if kind == "number":
            return self.number(float(value))
        return str(value)

    # -- a report's parts -----------------------------------------------------------------

    def text_cell(self, column: str, value: str) -> str:
        """A text cell: a key in words, a weekday, a country, a month; a name as it is."""
        if column == "weekday" and value.isdigit():
            return self.weekday(value)
        if column == "country":
            return self.country(value)
        if column == "month" and _MONTH.match(value):
            return self.month(value)
        if column == "reason":
            return self.reason(value)
        if column in KEYED_COLUMNS or value in SPECIAL_NAMES:
            return value_label(self._, value)
        return value

    def cell(self, column: Column, value: Any) -> Cell:
        if column.kind == "text" and value is not None:
            return Cell(self.text_cell(column.key, str(value)), "text", value)
        return Cell(self.by_kind(column.kind, value), column.kind, value)

    def figure(self, figure: Figure) -> FigureView:
        text = self.by_kind(figure.kind, figure.value)
        return FigureView(figure.key, key_label(self._, figure.key), text, figure.kind)

    def table(self, table: Table) -> TableView:
        columns = [(c.key, self.column_label(c), c.kind) for c in table.columns]
        rows = [
            [self.cell(c, v) for c, v in zip(table.columns, row, strict=True)] for row in table.rows
        ]
        return TableView(table.key, key_label(self._, table.key), columns, rows, len(columns) > 10)

    def column_label(self, column: Column) -> str:
        if re.fullmatch(r"\d{2}", column.key):
            return column.key  # an hour of the day
        return key_label(self._, column.key)

    def chart(self, chart: Chart) -> dict[str, Any]:
        """What static/reports.js draws: labels and series in words, values as numbers."""
        _ = self._
        return {
            "kind": chart.kind,
            "unit": chart.unit,
            "lang": self.lang,
            "currency": CURRENCY,
            "labels": [self.chart_label(label) for label in chart.labels],
            "series": [
                {"key": s.key, "label": key_label(_, s.key), "data": list(s.values)}
                for s in chart.series
            ],
            "words": {
                "d": _("%(n)s d"),
                "h": _("%(n)s h"),
                "min": _("%(n)s min"),
                "s": _("%(n)s s"),
            },
        }

    def chart_label(self, label: str) -> str:
        if _ISO_DAY.match(label):
            return self.short_day(label)
        return value_label(self._, label)

    # -- CSV ------------------------------------------------------------------------------

    def csv_header(self, column: Column) -> str:
        label = self.column_label(column)
        suffix = {"seconds": " (s)", "money": f" ({CURRENCY})", "percent": " (%)"}
        return label + suffix.get(column.kind, "")

    def csv_value(self, column: Column, value: Any) -> str | float | int:
        if value is None:
            return ""
        kind = column.kind
        if kind == "seconds":
            return _plain(round(float(value), 1))
        if kind == "percent":
            return _plain(round(float(value) * 100, 1))
        if kind == "money":
            return _plain(round(float(value), 4))
        if kind == "number":
            return _plain(round(float(value), 4))
        if kind == "date" or (column.key == "month" and _MONTH.match(str(value))):
            return str(value)  # ISO: a spreadsheet sorts it
        text = self.text_cell(column.key, str(value))
        return "'" + text if text.startswith(_FORMULA_START) else text


def _plain(value: float) -> int | float:
    return int(value) if value == int(value) else value


def csv_lines(table: Table, fm: Formats) -> Iterator[str]:
    """The table as CSV, a line at a time, with a BOM so that spreadsheets read accents."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield "\ufeff" + line([fm.csv_header(c) for c in table.columns])
    for row in table.rows:
        yield line([fm.csv_value(c, v) for c, v in zip(table.columns, row, strict=True)])


def view_of(report: Report, fm: Formats) -> dict[str, Any]:
    return {
        "figures": [fm.figure(f) for f in report.figures],
        "chart": fm.chart(report.chart),
        "tables": [fm.table(t) for t in report.tables],
    }

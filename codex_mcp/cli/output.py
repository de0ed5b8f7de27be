"""How every command prints: ``--json`` for scripts, text or a table for a person.

Like sqlite-utils' ``output_options``, the output flags are declared once here and a command only says
what its data is and how a person reads it::

    @output_options(json_help="Print JSON (objects keyed by column name).")
    def ls_command(..., as_json: bool) -> None:
        rows = in_app(ctx, lambda app: store.list_dashboard(app.db))
        emit_rows(rows, as_json, COLUMNS, empty="No instances.")

JSON is the data as returned by the store (pydantic models dumped by field name, which are the database's
column names); tables are for eyes only and may drop redundant columns in a narrow terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# Table columns: two spaces between them, nothing at the edges (see print_table).
_GAP = 2


def output_options(*, json_help: str = "Print JSON.") -> Callable[[F], F]:
    """The output flags of a command that prints data: ``--json`` (passed as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=json_help)


def jsonable(data: Any) -> Any:
    """Models as their fields (``mode="json"``), lists of them element by element, the rest as is."""
    if isinstance(data, list | tuple):
        return [jsonable(item) for item in data]
    model_dump = getattr(data, "model_dump", None)
    return model_dump(mode="json") if callable(model_dump) else data


def print_json(data: Any) -> None:
    click.echo(json.dumps(jsonable(data), indent=2, sort_keys=False, ensure_ascii=False))


def emit(data: Any, as_json: bool, text: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or hand it to ``text``, which writes what a person reads."""
    if as_json:
        print_json(data)
    else:
        text(data)


@dataclass(frozen=True)
class Column:
    """One column of a table: its header, how a row gives its cell, how it behaves when space is short.

    ``fixed`` cells (ids, dates, numbers, states) never wrap and never shrink; ``clip`` cells (titles,
    branches) stay on one line, cut with an ellipsis; ``wrap`` cells (error messages, values) wrap, because
    every word of them may matter. Columns with a ``drop`` rank are left out, lowest rank first, while the
    table would not fit the terminal: they repeat what another column says (a session named after the id)
    or matter less than the rest.
    """

    header: str
    value: Callable[[Any], object]
    kind: Literal["fixed", "clip", "wrap"] = "fixed"
    drop: int | None = None
    # What a clip or wrap column keeps before droppable columns give way (narrower is hard to read).
    min_width: int = 10


def emit_rows(
    rows: Sequence[Any], as_json: bool, columns: Sequence[Column], *, empty: str, title: str | None = None
) -> None:
    """Print ``rows`` as a JSON list, else as a table, else (no rows) the line ``empty``."""
    if as_json:
        print_json(list(rows))
    elif not rows:
        click.echo(empty)
    else:
        print_table(rows, columns, title=title)


def print_table(rows: Sequence[Any], columns: Sequence[Column], *, title: str | None = None) -> None:
    """A borderless table as wide as the terminal (``COLUMNS``, else its size, else 80) at most."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cells = [["" if (v := c.value(row)) is None else str(v) for c in columns] for row in rows]
    natural = [
        max([cell_len(c.header), *(cell_len(line[i]) for line in cells)]) for i, c in enumerate(columns)
    ]
    shown = _fit(columns, natural, console.width)
    widths = _share(columns, natural, shown, console.width)

    table = Table(
        title=title,
        header_style="bold",
        box=box.SIMPLE_HEAD,  # no borders (they cost three characters a column), a rule under the header
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i in shown:
        column = columns[i]
        table.add_column(
            column.header,
            width=widths[i],
            no_wrap=column.kind != "wrap",
            overflow="fold" if column.kind == "wrap" else "ellipsis",
        )
    for line in cells:
        table.add_row(*(line[i] for i in shown))
    console.print(table)


def _least(column: Column, natural: int) -> int:
    return natural if column.kind == "fixed" else min(natural, column.min_width)


def _needed(columns: Sequence[Column], natural: list[int], shown: list[int]) -> int:
    return sum(_least(columns[i], natural[i]) for i in shown) + _GAP * (len(shown) - 1)


def _fit(columns: Sequence[Column], natural: list[int], width: int) -> list[int]:
    """The columns to show: all of them, less the droppable ones (lowest rank first) while too wide."""
    shown = list(range(len(columns)))
    for _, index in sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None):
        if _needed(columns, natural, shown) <= width:
            break
        shown.remove(index)
    return shown


def _share(columns: Sequence[Column], natural: list[int], shown: list[int], width: int) -> dict[int, int]:
    """Each shown column's width: fixed ones their longest cell; the others share what is left.

    Every flexible column first gets its least width; clipped text is lost and wrapped text only grows
    downwards, so what remains widens clip columns first, then wrap columns. Within a kind the narrowest
    column is served first and the rest split evenly: a short branch name keeps its full width, a long
    title takes the remainder. Too narrow even for the least widths, they split what there is.
    """
    widths = {i: natural[i] for i in shown}
    flexible = [i for i in shown if columns[i].kind != "fixed"]
    left = width - _GAP * (len(shown) - 1) - sum(natural[i] for i in shown if columns[i].kind == "fixed")
    least = {i: _least(columns[i], natural[i]) for i in flexible}
    if left < sum(least.values()):
        _fill(flexible, dict.fromkeys(flexible, 1), least, left - len(flexible), widths)
        return widths
    left -= sum(least.values())
    for kind in ("clip", "wrap"):
        group = [i for i in flexible if columns[i].kind == kind]
        left -= _fill(group, least, {i: natural[i] for i in group}, left, widths)
    return widths


def _fill(
    group: list[int], floor: dict[int, int], ceiling: dict[int, int], extra: int, widths: dict[int, int]
) -> int:
    """Give each of ``group`` its floor plus an even share of ``extra``, up to its ceiling, the narrowest
    first (what one does not need goes to the others); how much of ``extra`` was given."""
    given = 0
    for position, index in enumerate(sorted(group, key=lambda i: ceiling[i])):
        share = max(0, (extra - given) // (len(group) - position))
        widths[index] = min(ceiling[index], floor[index] + share)
        given += widths[index] - floor[index]
    return given

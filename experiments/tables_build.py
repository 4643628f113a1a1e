"""Paper tables built from the results index: the rows a spec selects, aggregated over seeds
(mean, std, n per key) into a :class:`Table` of formatted cells; no cell mixes runs that
differ in a transfer setting."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from datamodules.errors import UserInputError
from experiments import results
from experiments.tables_config import Selection, TableSpec
from experiments.tables_format import MISSING, fmt_cell, fmt_value, sort_key


def select(df: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    out = df
    if sel.sweep:
        out = out.loc[results.in_sweep(out, sel.sweep)]
    for col, want in sel.where.items():
        if col not in out.columns:
            raise UserInputError(f"where: unknown column '{col}'; columns: {', '.join(df.columns)}")
        values = want if isinstance(want, list) else [want]
        out = out[out[col].isin(values)]
    if sel.metric not in df.columns:
        raise UserInputError(
            f"metric '{sel.metric}' is not a column; columns: {', '.join(df.columns)}"
        )
    return out.dropna(subset=[sel.metric])


def check_columns(df: pd.DataFrame, cols: list[str], what: str) -> None:
    bad = [c for c in cols if c not in df.columns]
    if bad:
        raise UserInputError(f"{what}: unknown columns {bad}; columns: {', '.join(df.columns)}")


def _keyed(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Missing key values become text: a random-init row shows its init in the first key."""
    d = results.as_keys(df, keys)
    if keys and "init" in d:
        other = d["init"].fillna("hashtag") != "hashtag"
        d.loc[other, keys[0]] = d.loc[other, "init"].map(lambda v: f"{v} init")
    return d


def aggregate(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """mean, std (sample, over seeds and repeated runs) and n per key tuple; ``keys`` should
    already hold every varying transfer setting (:func:`experiments.results.split_keys`)."""
    d = _keyed(df, keys)
    g = d.groupby(keys, dropna=False, sort=False)[metric]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    return out


@dataclass
class Table:
    """A formatted table: row labels, column labels and cell strings (MISSING where empty).

    ``column_names`` are the keys of a column tuple: the spec's columns, then ``split_by``
    (transfer settings that varied inside a cell, added so that no cell mixes them)."""

    row_names: list[str]
    rows: list[tuple]
    columns: list[tuple]
    cells: list[list[str]]
    stats: pd.DataFrame  # tidy: keys, mean, std, n
    column_names: list[str] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)

    def column_label(self, column: tuple, sep: str = " · ") -> str:
        parts = []
        for name, value in zip(self.column_names, column):
            text = fmt_value(value)
            parts.append(f"{name}={text}" if name in self.split_by else text)
        return sep.join(parts)


def build_table(df: pd.DataFrame, spec: TableSpec) -> Table:
    d = select(df, spec)
    check_columns(df, [*spec.rows, *spec.columns], f"table {spec.name}")
    keys = [*spec.rows, *spec.columns]
    keys = results.split_keys(_keyed(d, keys), keys)
    split_by = keys[len(spec.rows) + len(spec.columns) :]
    col_keys = [*spec.columns, *split_by]
    stats = aggregate(d, keys, spec.metric)
    key = lambda t: tuple(sort_key(v) for v in t)  # noqa: E731
    rows = sorted({tuple(r) for r in stats[spec.rows].itertuples(index=False)}, key=key)
    cols = sorted({tuple(r) for r in stats[col_keys].itertuples(index=False)}, key=key)
    lookup = {
        tuple(r[: len(keys)]): r
        for r in stats[[*spec.rows, *col_keys, "mean", "std", "n"]].itertuples(index=False)
    }
    cells = []
    for r in rows:
        line = []
        for c in cols:
            hit = lookup.get((*r, *c))
            line.append(
                MISSING if hit is None else fmt_cell(hit[-3], hit[-2], int(hit[-1]), spec.digits)
            )
        cells.append(line)
    return Table(list(spec.rows), rows, cols, cells, stats, col_keys, split_by)

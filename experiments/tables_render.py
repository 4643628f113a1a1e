"""A built :class:`~experiments.tables_build.Table` written as Markdown and as a LaTeX
(booktabs) table; LaTeX is written by pandas' ``Styler.to_latex``, which escapes every special
character."""

from __future__ import annotations

import pandas as pd

from experiments.tables_build import Table
from experiments.tables_format import MISSING, fmt_value


def to_markdown(t: Table, title: str = "") -> str:
    head = [*t.row_names, *(t.column_label(c) for c in t.columns)]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    for r, cells in zip(t.rows, t.cells):
        lines.append("| " + " | ".join([*(fmt_value(v) for v in r), *cells]) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """``text`` escaped for LaTeX by pandas' own rule (``Styler.format(escape="latex")``)."""
    frame = pd.DataFrame([[str(text)]])
    styler = frame.style.format(escape="latex").hide(axis="index").hide(axis="columns")
    return styler.to_string(delimiter="").rstrip("\n")


def _tex_symbols(text: str) -> str:
    """After escaping: ± and the missing-cell dash as LaTeX writes them."""
    return str(text).replace("±", r"$\pm$").replace(MISSING, "---")


def to_latex(t: Table, title: str = "") -> str:
    """A booktabs table through ``Styler.to_latex``: labels and cells escaped by pandas."""
    head = [*t.row_names, *(t.column_label(c, " / ") for c in t.columns)]
    body = [[*(fmt_value(v) for v in r), *cells] for r, cells in zip(t.rows, t.cells)]
    frame = pd.DataFrame(body, columns=pd.Index(head), dtype=object)
    styler = (
        frame.style.hide(axis="index")
        .format(escape="latex", formatter=_tex_symbols)
        .format_index(escape="latex", axis="columns")
    )
    return styler.to_latex(
        column_format="l" * len(t.row_names) + "r" * len(t.columns),
        hrules=True,
        caption=latex_escape(title) if title else None,
        position="t",
        position_float="centering",
        environment="table",
    )

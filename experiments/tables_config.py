"""The ``tables`` verb's config schema (``configs/tables/*.yaml``): which rows of the results
index each table, figure and scaling fit uses, and how it is laid out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Selection:
    """Which rows of the index a table, figure or fit uses."""

    sweep: str = ""  # only runs this sweep planned ("" = all)
    where: dict[str, Any] = field(default_factory=dict)  # column -> value or list of values
    metric: str = "top1"  # top1 | top5 | pt_p1 | ...


@dataclass
class TableSpec(Selection):
    name: str = ""
    title: str = ""
    rows: list[str] = field(default_factory=lambda: ["model", "vocab", "images"])
    columns: list[str] = field(default_factory=lambda: ["target", "protocol"])
    digits: int = 1


@dataclass
class FigureSpec(Selection):
    name: str = ""
    x: str = "images"
    hue: str = "vocab"  # one line per value
    logx: bool = False
    facets: list[str] = field(default_factory=lambda: ["target", "protocol"])


@dataclass
class ScalingSpec(Selection):
    name: str = ""
    x: str = "images"
    hue: str = "vocab"  # one fit per value ("" = one fit)
    target_images: float = 3.5e9
    bootstrap: int = 1000
    facets: list[str] = field(default_factory=lambda: ["target", "protocol"])


@dataclass
class TablesConfig:
    runs_dir: str = "runs"
    output_dir: str = "results"
    tables: list[TableSpec] = field(default_factory=list)
    figures: list[FigureSpec] = field(default_factory=list)
    scaling: list[ScalingSpec] = field(default_factory=list)
    findings: bool = True
    findings_metric: str = "top1"
    findings_sweeps: dict[str, str] = field(default_factory=dict)  # claim key -> sweep

"""The results index: every ``runs/*/metrics.json`` in one tidy table (pandas).

One row per transfer run, joined to the pretraining run it started from
(``transfer.pretrain_run == pretrain.name``), with the pretraining axes as columns; a
pretraining run without transfers is one row with empty transfer columns; a random-init (or
weights-file) transfer is its own row with empty pretraining columns. Run directories are the
only source of truth: nothing is read from anywhere else, except which sweep launched a run
(``<runs_dir>/_sweeps/<sweep>.json``, written by the sweep verb) for the ``sweeps`` column.

Every transfer setting is a column (:data:`TRANSFER_SETTINGS`: target, target split, protocol,
probed features, batch-norm re-estimation, resolution, folds), and :func:`split_keys` adds any of
them that varies inside a group to the group's keys, so the tables, figures, fits and findings
never average runs that differ in how they were evaluated. ``target_split`` is read from
metrics.json when present (which split protocol the target used, e.g. held-out images of the
pretraining categories vs held-out categories) and is ``""`` for runs that predate it.

``images`` and ``vocab_size`` are measured by each run (every seed draws and deduplicates its own
data, so the seeds of one setting differ by a few images or hashtags); the index holds their mean
over the setting's seeds (:func:`setting_means`) so that the seeds of a setting share one table
row, one figure point and one fit point, and each run's own value in ``images_run`` /
``vocab_size_run``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from datamodules.axes import COLUMNS as AXIS_COLUMNS
from datamodules.axes import MEASURED
from datamodules.errors import UserInputError
from experiments.rundir import METRICS_FILE, atomic_write_text, read_json

AXES = list(AXIS_COLUMNS)  # the paper's axes (datamodules.axes): one column each
# Measured per run, so they differ a little between the seeds of one setting (each seed draws its
# own data, deduplicated); the index holds their mean over the setting's seeds and the run's own
# value in "<axis>_run", so a table row or a fit's point holds every seed of its setting.
SEED_MEASURED = MEASURED
PRETRAIN_COLUMNS = [
    "pretrain_run",
    *AXES,
    *(f"{axis}_run" for axis in SEED_MEASURED),
    "images_seen",
    "pt_loss",
    "pt_p1",
    "pt_p5",
    "pt_wall_s",
]
TRANSFER_COLUMNS = [
    "transfer_run",
    "init",
    "target",
    "protocol",
    "target_split",
    "features",
    "bn_recalibrate",
    "resolution",
    "top1",
    "top5",
    "top1_std",
    "top5_std",
    "folds",
    "num_classes",
    "transfer_seed",
    "transfer_wall_s",
]
COLUMNS = [*PRETRAIN_COLUMNS, *TRANSFER_COLUMNS, "sweeps"]
# How a transfer run was evaluated: runs that differ in any of these are never one cell.
TRANSFER_SETTINGS = [
    "target",
    "target_split",
    "protocol",
    "features",
    "bn_recalibrate",
    "resolution",
    "folds",
]


def read_runs(runs_dir: str | Path) -> tuple[list[dict], list[str]]:
    """Complete metrics of every run under runs_dir, and the names of the incomplete ones."""
    complete, incomplete = [], []
    for path in sorted(Path(runs_dir).glob(f"*/{METRICS_FILE}")):
        try:
            metrics = read_json(path)
        except (json.JSONDecodeError, OSError):
            incomplete.append(path.parent.name)
            continue
        if metrics.get("status") == "complete" and metrics.get("kind") in ("pretrain", "transfer"):
            metrics.setdefault("name", path.parent.name)
            complete.append(metrics)
        else:
            incomplete.append(path.parent.name)
    return complete, incomplete


def sweep_membership(runs_dir: str | Path) -> dict[str, list[str]]:
    """run name -> the sweeps that planned it (pretraining and transfer names)."""
    out: dict[str, list[str]] = {}
    for path in sorted(Path(runs_dir).glob("_sweeps/*.json")):
        if path.name.endswith(".status.json"):
            continue
        try:
            manifest = read_json(path)
        except (json.JSONDecodeError, OSError):
            continue
        for run in manifest.get("runs", []):
            for name in [run.get("name", ""), *run.get("transfers", [])]:
                out.setdefault(name, []).append(manifest.get("sweep", path.stem))
    return out


def _pretrain_row(m: dict) -> dict:
    axes = m.get("axes", {})
    final = m.get("final", {}) or {}
    return {
        "pretrain_run": m["name"],
        **{k: axes.get(k) for k in AXES},
        "images_seen": m.get("images_seen"),
        "pt_loss": final.get("loss"),
        "pt_p1": final.get("precision_at_1"),
        "pt_p5": final.get("precision_at_5"),
        "pt_wall_s": m.get("wall_s"),
    }


def _transfer_row(m: dict) -> dict:
    return {
        "transfer_run": m["name"],
        "init": m.get("init") or ("hashtag" if m.get("pretrain_run") else "random"),
        "target": m.get("target"),
        "protocol": m.get("protocol"),
        "target_split": m.get("target_split", ""),
        "features": m.get("features"),
        "bn_recalibrate": m.get("bn_recalibrate"),
        "resolution": m.get("resolution"),
        "top1": m.get("top1"),
        "top5": m.get("top5"),
        "top1_std": m.get("top1_std"),
        "top5_std": m.get("top5_std"),
        "folds": m.get("folds"),
        "num_classes": m.get("num_classes"),
        "transfer_seed": m.get("seed"),
        "transfer_wall_s": m.get("wall_s"),
    }


def build_index(runs_dir: str | Path) -> pd.DataFrame:
    """The tidy results table (columns :data:`COLUMNS`), one row per transfer or lone pretrain."""
    runs, _ = read_runs(runs_dir)
    sweeps = sweep_membership(runs_dir)
    pretrains = {m["name"]: m for m in runs if m["kind"] == "pretrain"}
    used: set[str] = set()
    rows = []
    for m in (m for m in runs if m["kind"] == "transfer"):
        row = _transfer_row(m)
        parent = m.get("pretrain_run") or ""
        if parent in pretrains:
            row.update(_pretrain_row(pretrains[parent]))
            used.add(parent)
        elif parent:  # pretraining run not under this runs_dir: its axes travel in the transfer
            row.update(_pretrain_row({"name": parent, "axes": m.get("pretrain_axes") or {}}))
        else:  # random init: the row's seed is the transfer's
            row["seed"] = m.get("seed")
        names = sweeps.get(m["name"], []) or sweeps.get(parent, [])
        row["sweeps"] = ",".join(sorted(set(names)))
        rows.append(row)
    for name, m in pretrains.items():
        if name not in used:
            rows.append({**_pretrain_row(m), "sweeps": ",".join(sorted(set(sweeps.get(name, []))))})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df.sort_values(["pretrain_run", "transfer_run"], na_position="first", kind="stable")
    return _tidy(setting_means(df.reset_index(drop=True)))


SEED_TOKEN = r"_seed-\d+$"  # how a sweep run name ends (experiments.sweep_spec)


def setting_means(df: pd.DataFrame) -> pd.DataFrame:
    """:data:`SEED_MEASURED` axes as the mean (rounded) over the pretraining runs of one setting,
    each run's own value kept in ``<axis>_run``. A setting: every axis but these and the seed
    equal and, for sweep runs, the same run name but for its ``_seed-N`` token. That name
    carries every swept key, also those that are not axes: ``data.vocab.top_k`` (``vocab-100``)
    keeps a top-100 vocabulary apart from the full one (same ``vocab`` column), whose mean would
    otherwise mix both and match neither's runs in the findings' pairs."""
    df = df.copy()
    setting = [c for c in AXES if c not in (*SEED_MEASURED, "seed")]
    pretrained = df["pretrain_run"].notna()
    names = df["pretrain_run"].fillna("")
    # a name without the token (not a sweep's) adds nothing: its setting is its axes
    stem = names.str.replace(SEED_TOKEN, "", regex=True).where(names.str.contains(SEED_TOKEN), "")
    axes = as_keys(df, setting)[setting].itertuples(index=False)
    keys = pd.Series([(*a, s) for a, s in zip(axes, stem, strict=True)], index=df.index)
    first = ~df["pretrain_run"].duplicated() & pretrained  # a run with many transfers counts once
    for axis in SEED_MEASURED:
        df[f"{axis}_run"] = df[axis]
        values = pd.to_numeric(df.loc[first, axis], errors="coerce")
        means = values.groupby(keys[first]).mean().round()
        df.loc[pretrained, axis] = keys[pretrained].map(means)
    return df


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """One spelling of "missing" per column type: NaN in numeric columns, None in the others
    (rows that lack a key and rows whose metrics.json wrote null look the same)."""
    for c in df.columns:
        if df[c].isna().all():
            df[c] = pd.Series(np.nan, index=df.index, dtype=float)
        elif df[c].dtype == object:
            df[c] = df[c].where(df[c].notna(), None)
    return df


RECORDS_FILE = "records.jsonl"


def write_index(df: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path, Path]:
    """results.csv, results.parquet and records.jsonl (:func:`write_records`) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, parquet = out / "results.csv", out / "results.parquet"
    df.to_csv(csv, index=False)
    # object columns mix None and values: parquet wants one type per column
    df.convert_dtypes().to_parquet(parquet, index=False)
    return csv, parquet, write_records(df, out / RECORDS_FILE)


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_records(df: pd.DataFrame, path: str | Path) -> Path:
    """The index as JSON lines, one run a line, values as metrics.json had them (missing =
    null): the per-run record a results folder commits, from which :func:`read_records`
    rebuilds the same index without the run directories."""
    lines = [
        json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=False)
        for row in df.to_dict("records")
    ]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_records(path: str | Path) -> pd.DataFrame:
    """The index written by :func:`write_records` (columns :data:`COLUMNS`, in that order)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no per-run records here; build them from run directories")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}:{i}: not a JSON record ({exc.msg})") from None
    unknown = sorted({k for r in rows for k in r} - set(COLUMNS))
    if unknown:
        raise UserInputError(f"{path}: unknown columns {unknown}; expected {', '.join(COLUMNS)}")
    return _tidy(pd.DataFrame(rows, columns=COLUMNS))


def in_sweep(df: pd.DataFrame, sweep: str) -> pd.Series:
    """Rows that a given sweep planned (the ``sweeps`` column is comma-separated)."""
    names = df["sweeps"].fillna("").astype(str).str.split(",")
    return pd.Series([sweep in n for n in names], index=df.index, dtype=bool)


def as_keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A copy whose key columns hold no missing values (``""`` instead), so groupby keeps them."""
    d = df.copy()
    for k in keys:
        d[k] = d[k].astype(object).where(d[k].notna(), "")
    return d


def split_keys(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """``keys`` plus every transfer setting (:data:`TRANSFER_SETTINGS`) that takes more than one
    value inside some group of ``keys``: grouping by the result never mixes settings. A setting
    that is constant within every group (e.g. folds that differ only between targets, with the
    target a key) is not added."""
    extra = [c for c in TRANSFER_SETTINGS if c not in keys and c in df.columns]
    if df.empty or not extra:
        return list(keys)
    d = as_keys(df, [*keys, *extra])
    if keys:
        varies = d.groupby(keys, dropna=False, sort=False)[extra].nunique(dropna=False).max()
    else:
        varies = d[extra].nunique(dropna=False)
    return [*keys, *(c for c in extra if varies[c] > 1)]

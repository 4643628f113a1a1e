"""Sweep specs (``configs/sweeps/*.yaml``): schema, expansion into runs, and run names.

A spec names a base run config and the axes to vary. Expansion is a pure function of the spec:
the ``zip`` axes move together (row ``i`` of every list), that zipped list is crossed with the
``grid`` product and then with ``seeds``. Every point becomes one pretraining run named from its
values (``rx101-32x8d_data-35M_vocab-17k_samp-sqrt_noise-0_seed-0``), followed by one transfer
run per entry of ``transfers`` with ``pretrained=<that run dir>``. Each entry of ``baselines``
is a transfer of a seeded random-init network (``pretrained=``), one per seed, named
``random-<model>__<label>_seed-<s>`` from the transfer config's model; it runs after the first
pretraining run of its seed, so a sweep carries the baseline its findings compare with.

Names are a function of the values only, so two sweeps that share a point share its run
directory, and a results table can be read from the names alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.axes import NAME_KEYS, NAME_PREFIXES, VOCAB_KEYS
from datamodules.data_legacy import FLAT_KEYS
from datamodules.errors import UserInputError
from experiments.config import REPO_ROOT, RunConfig, check_renamed, load_config
from lightning_modules.model_config import ARCH_FIELDS

ARCH_KEYS = frozenset(f"model.{f}" for f in ARCH_FIELDS)

# Keys always shown in run names, in this order (values read from the resolved run config), and
# the short prefixes of the paper's axes (datamodules.axes); any other key is written
# `<last component>-<value>`, a data key with the last component of its flat-layout key
# (data.dedup.hamming -> `dedup_hamming-6`: datamodules.data_legacy), so names stayed what
# they were before the data sections. The vocabulary token is made from data.vocab.name and
# data.vocab.top_k, so sweeping data.vocab.top_k needs no extra token.
DEFAULT_NAME_KEYS = list(NAME_KEYS)
DEFAULT_PREFIXES = dict(NAME_PREFIXES)


@dataclass
class SlurmSpec:
    """Cluster settings for ``--launcher slurm`` (submitit's AutoExecutor)."""

    partition: str = ""
    gpus_per_node: int = 8
    nodes: int = 1
    cpus_per_task: int = 10  # per GPU task
    mem_gb: int = 0  # 0 = the partition's default
    timeout_min: int = 4320
    array_parallelism: int = 64  # how many array tasks run at once
    account: str = ""
    qos: str = ""
    constraint: str = ""
    log_dir: str = ""  # "" = <runs_dir>/_sweeps/<sweep>/slurm
    additional_parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class TransferSpec:
    """A transfer run that follows every pretraining run of the sweep."""

    config: str = ""  # a transfer run config (configs/transfer/*.yaml)
    overrides: list[str] = field(default_factory=list)
    label: str = ""  # short name appended to the pretraining run's name; "" = config stem

    @property
    def name(self) -> str:
        """The label, or the config file's stem when there is none."""
        return self.label or Path(self.config).stem


@dataclass
class SweepSpec:
    name: str = ""  # "" = the spec file's stem
    base: str = ""  # run config every run starts from
    overrides: list[str] = field(default_factory=list)  # dot-list applied to every run
    grid: dict[str, list[Any]] = field(default_factory=dict)  # key -> values; product
    zip: dict[str, list[Any]] = field(default_factory=dict)  # key -> equal-length lists
    seeds: list[int] = field(default_factory=lambda: [0])
    transfers: list[TransferSpec] = field(default_factory=list)
    baselines: list[TransferSpec] = field(default_factory=list)  # random init, once per seed
    runs_dir: str = ""  # "" = the base config's runs_dir
    name_keys: list[str] = field(default_factory=lambda: list(DEFAULT_NAME_KEYS))
    prefixes: dict[str, str] = field(default_factory=dict)  # key -> short prefix
    value_names: dict[str, dict[str, str]] = field(default_factory=dict)  # key -> value -> label
    slurm: SlurmSpec = field(default_factory=SlurmSpec)


@dataclass(frozen=True)
class PlannedTransfer:
    name: str
    config: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class PlannedRun:
    """One pretraining run of a sweep, with the transfers that follow it."""

    name: str
    axes: dict[str, Any]  # swept key -> value (grid, zip and "seed")
    zip_index: int | None  # row of the zip lists (None when the spec has no zip)
    base: str
    overrides: tuple[str, ...]  # spec overrides, then the point's values, then name/runs_dir
    runs_dir: str
    transfers: tuple[PlannedTransfer, ...]

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def config(self) -> RunConfig:
        return load_config(self.base, list(self.overrides))


def resolve_path(ref: str, spec_dir: Path | None = None) -> str:
    """A config path as written in a spec: absolute, relative to the cwd, the spec or the repo."""
    if not ref:
        return ref
    candidates = [Path(ref)]
    if spec_dir is not None:
        candidates.append(spec_dir / ref)
    candidates.append(REPO_ROOT / ref)
    for cand in candidates:
        if cand.is_file():
            return str(cand)
    raise UserInputError(
        f"config file not found: {ref} (looked in the current folder"
        f"{', ' + str(spec_dir) if spec_dir else ''} and {REPO_ROOT})"
    )


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; paths inside it become absolute."""
    path = Path(path)
    spec: SweepSpec = load_config(path, schema=SweepSpec)
    spec.name = spec.name or path.stem
    if not spec.base:
        raise UserInputError(
            f"{path}: a sweep needs `base:` (a run config, e.g. configs/pretrain/tiny_cpu.yaml)"
        )
    spec.base = resolve_path(spec.base, path.parent)
    for section in ("transfers", "baselines"):
        for tr in getattr(spec, section):
            if not tr.config:
                raise UserInputError(f"{path}: every entry of `{section}:` needs `config:`")
            tr.config = resolve_path(tr.config, path.parent)
    validate_spec(spec, where=str(path))
    return spec


def validate_spec(spec: SweepSpec, where: str = "sweep") -> None:
    for key in [*spec.grid, *spec.zip, *spec.name_keys, *spec.prefixes, *spec.value_names]:
        check_renamed(key, where)
    for item in [
        *spec.overrides,
        *(o for t in [*spec.transfers, *spec.baselines] for o in t.overrides),
    ]:
        key, _, value = item.partition("=")
        check_renamed(key, where, value.lstrip().startswith("{"))
    if not spec.seeds:
        raise UserInputError(f"{where}: `seeds:` is empty; give at least one seed, e.g. [0]")
    for section in ("grid", "zip"):
        for key, values in getattr(spec, section).items():
            if key == "seed":
                raise UserInputError(f"{where}: sweep seeds with `seeds:`, not {section}.seed")
            if not values:
                raise UserInputError(f"{where}: {section}.{key} has no values")
    both = set(spec.grid) & set(spec.zip)
    if both:
        raise UserInputError(f"{where}: keys both in grid and zip: {', '.join(sorted(both))}")
    lengths = {key: len(values) for key, values in spec.zip.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise UserInputError(f"{where}: zip lists must have equal lengths, got {detail}")
    for section in ("transfers", "baselines"):
        labels = [tr.name for tr in getattr(spec, section)]
        if len(set(labels)) != len(labels):
            raise UserInputError(
                f"{where}: two {section} share the label {labels}; give each a distinct `label:`"
            )


# ---------------------------------------------------------------------------------------------
# names


def human_count(n: float) -> str:
    """35_000_000 -> '35M', 8_500 -> '8.5k', 3_500_000_000 -> '3.5B', 640 -> '640'."""
    n = float(n)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}" if not n.is_integer() else str(int(n))


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "-".join(_plain(v) for v in value)
    return str(value).replace("/", "-").replace(" ", "")


def scale_token(scale: float) -> str:
    """data.write.scale: > 1 is an absolute image count ('35M'), <= 1 a fraction ('10pct')."""
    if scale > 1:
        return human_count(scale)
    pct = scale * 100
    return f"{pct:.3g}pct"


def noise_token(p: float) -> str:
    pct = p * 100
    return str(int(round(pct))) if math.isclose(pct, round(pct)) else f"{pct:.3g}"


def vocab_token(vocab: str, top_k: int) -> str:
    """`wordnet` -> 'wordnet'; wordnet + top_k 8500 -> '8.5k'; in1k + top_k 500 -> 'in1k-500'."""
    if not top_k:
        return vocab
    return human_count(top_k) if vocab == "wordnet" else f"{vocab}-{human_count(top_k)}"


def name_token(key: str, values: dict[str, Any], spec: SweepSpec) -> str:
    """The name piece for `key`, given the run's values (dotted key -> value)."""
    prefix = spec.prefixes.get(key) or DEFAULT_PREFIXES.get(key)
    relabel = spec.value_names.get(key, {})
    if key in VOCAB_KEYS:
        raw = values[VOCAB_KEYS[0]]
        top_k = int(values.get(VOCAB_KEYS[1]) or 0)
        label = relabel.get(_plain(top_k) if top_k else str(raw))
        body = label or vocab_token(str(raw), top_k)
        return f"{prefix or 'vocab'}-{body}"
    value = values[key]
    if _plain(value) in relabel:
        body = relabel[_plain(value)]
    elif key == "data.write.scale":
        body = scale_token(float(value))
    elif key == "data.loading.label_noise":
        body = noise_token(float(value))
    else:
        body = _plain(value)
    if prefix == "":  # an axis named by its bare value (the model)
        return body
    return f"{prefix or FLAT_KEYS.get(key, key).rsplit('.', 1)[-1]}-{body}"


def _lookup(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not hasattr(node, part):
            raise UserInputError(f"name key '{key}' is not a run config key")
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        raise UserInputError(f"name key '{key}' is a config section, not a key")
    return node


def run_name(spec: SweepSpec, cfg: RunConfig, swept: list[str]) -> str:
    """The run's name: the spec's name keys, then any swept key they do not already cover."""
    keys: list[str] = list(spec.name_keys)
    covered = set(keys) | (set(VOCAB_KEYS) if set(VOCAB_KEYS) & set(keys) else set())
    zip_keys = set(spec.zip)
    zip_covered = bool(zip_keys & covered)
    for key in swept:
        if key in covered or (key in zip_keys and zip_covered):
            continue
        keys.append(key)
        covered.add(key)
        zip_covered = zip_covered or key in zip_keys
    if "seed" in keys:  # the seed reads best last
        keys = [k for k in keys if k != "seed"] + ["seed"]
    values = {key: _lookup(cfg, key) for key in set(keys) | set(VOCAB_KEYS) if key}
    tokens: list[str] = []
    for key in keys:
        token = name_token(key, values, spec)
        if token not in tokens:
            tokens.append(token)
    return "_".join(tokens)


# ---------------------------------------------------------------------------------------------
# expansion


def _dot(key: str, value: Any) -> str:
    """A dot-list item that OmegaConf parses back to the same value."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = "[" + ",".join(str(v) for v in value) + "]"
    else:
        text = str(value)
    return f"{key}={text}"


def points(spec: SweepSpec) -> list[tuple[dict[str, Any], int | None]]:
    """Every (axes, zip_index) of the spec, in launch order: zip x grid x seeds."""
    zip_len = len(next(iter(spec.zip.values()))) if spec.zip else 0
    zip_rows: list[tuple[int | None, dict[str, Any]]] = (
        [(i, {k: v[i] for k, v in spec.zip.items()}) for i in range(zip_len)]
        if spec.zip
        else [(None, {})]
    )
    grid_keys = list(spec.grid)
    grid_rows = [dict(zip(grid_keys, combo)) for combo in itertools.product(*spec.grid.values())]
    out = []
    for zi, zrow in zip_rows:
        for grow in grid_rows:
            for seed in spec.seeds:
                out.append(({**zrow, **grow, "seed": seed}, zi))
    return out


def expand(
    spec: SweepSpec,
    extra_overrides: list[str] | tuple[str, ...] = (),
    runs_dir: str = "",
    transfer_overrides: list[str] | tuple[str, ...] = (),
) -> list[PlannedRun]:
    """All runs of the spec. Loads each run config once, so a bad key fails here, not later.

    ``extra_overrides`` go to every pretraining run, ``transfer_overrides`` to every transfer.
    """
    swept = [*spec.zip, *spec.grid, "seed"]
    runs: list[PlannedRun] = []
    baseline_seeds: set[int] = set()
    for axes, zi in points(spec):
        overrides = [*spec.overrides, *extra_overrides, *(_dot(k, v) for k, v in axes.items())]
        cfg = load_config(spec.base, overrides)
        name = run_name(spec, cfg, swept)
        out_dir = runs_dir or spec.runs_dir or cfg.runs_dir
        full = (*overrides, f"name={name}", f"runs_dir={out_dir}")
        # the architecture this point sets (width_mini) reaches its probes, whose own config
        # names the default model: a checkpoint must match the configured backbone
        arch = tuple(o for o in overrides if o.split("=", 1)[0] in ARCH_KEYS)
        transfers = []
        for tr in spec.transfers:
            label = tr.name
            tname = f"{name}__{label}"
            transfers.append(
                PlannedTransfer(
                    name=tname,
                    config=tr.config,
                    overrides=(
                        *tr.overrides,
                        *transfer_overrides,
                        *arch,
                        f"seed={axes['seed']}",
                        f"pretrained={Path(out_dir) / name}",
                        f"name={tname}",
                        f"runs_dir={out_dir}",
                    ),
                )
            )
        if axes["seed"] not in baseline_seeds:  # the first run of its seed carries the baselines
            baseline_seeds.add(axes["seed"])
            transfers += _baselines(spec, axes["seed"], out_dir, transfer_overrides)
        runs.append(PlannedRun(name, axes, zi, spec.base, full, out_dir, tuple(transfers)))
    seen: dict[str, dict] = {}
    for run in runs:
        if run.name in seen:
            raise UserInputError(
                f"sweep {spec.name}: two points get the same run name '{run.name}' "
                f"({seen[run.name]} and {run.axes}); add the differing key to `name_keys:`"
            )
        seen[run.name] = run.axes
    return runs


def _baselines(
    spec: SweepSpec, seed: int, out_dir: str, transfer_overrides: list[str] | tuple[str, ...]
) -> list[PlannedTransfer]:
    """The random-init transfers of one seed (``baselines:``), named from their own model."""
    out = []
    for tr in spec.baselines:
        overrides = [*tr.overrides, *transfer_overrides, f"seed={seed}", "pretrained="]
        model = load_config(tr.config, overrides).model.name
        name = f"random-{model}__{tr.name}_seed-{seed}"
        full = (*overrides, f"name={name}", f"runs_dir={out_dir}")
        out.append(PlannedTransfer(name=name, config=tr.config, overrides=full))
    return out

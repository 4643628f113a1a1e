"""Structured configs: the typed schema every YAML under configs/ composes onto.

A run config is one :class:`RunConfig`. YAML files may start with ``defaults: [other.yaml, ...]``
(paths relative to the file, or to the repository's ``configs/``), merged first, in order.
CLI overrides are OmegaConf dot-lists (``data.write.scale=0.1``). Unknown keys, wrong types and
missing files raise :class:`UserInputError` with a one-line message naming the key and the
valid choices; a key of the flat ``data`` layout (``data.scale``) names its new key
(:mod:`datamodules.data_legacy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf, ValidationError
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from datamodules import data_config, transfer_config
from datamodules.data_config import (
    DataConfig,
    DedupConfig,
    LoadingConfig,
    SourceConfig,
    VocabConfig,
    WriteConfig,
)
from datamodules.data_legacy import renamed
from datamodules.errors import UserInputError
from datamodules.transfer_config import TransferConfig
from lightning_modules import model_config
from lightning_modules.model_config import ModelConfig, OptimConfig, ScheduleConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"


@dataclass
class TrainerConfig:
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: Any = 1  # int or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp
    precision: str = "auto"  # auto = bf16-mixed on a GPU, 32-true on the CPU
    channels_last: bool = True
    compile: bool = False  # torch.compile (GPU)
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 200
    val_every_images: int = 0  # 0 = once per epoch
    limit_val_batches: int = 0  # 0 = all
    deterministic: bool = False


@dataclass
class LoggingConfig:
    csv: bool = True
    wandb: bool = True
    wandb_project: str = "wsl-scale"
    wandb_mode: str = "offline"  # the environment's WANDB_MODE wins when set
    tensorboard: bool = False  # Lightning's TensorBoardLogger into logs/tensorboard/


@dataclass
class RunConfig:
    name: str = ""  # run directory name under runs_dir; "" = derived from the config
    seed: int = 0  # drives sampling, label noise, splits and init
    runs_dir: str = "runs"
    # pretrain: start from this checkpoint; inside this run's (unfinished) folder it resumes,
    # otherwise it forks into a new run (<name>_fork-step<N>-<hash> unless name= is given)
    ckpt_path: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)


# String knobs with a closed set of values, each defined once in its section's module.
CHOICES: dict[str, tuple[str, ...]] = {
    **{f"data.{s}.{k}": v for s, fields in data_config.CHOICES.items() for k, v in fields.items()},
    **{f"{s}.{k}": v for s, fields in model_config.CHOICES.items() for k, v in fields.items()},
    **{f"transfer.{k}": v for k, v in transfer_config.CHOICES.items()},
}

# CLI shorthands: `pretrained=X` means `transfer.pretrained=X`.
ALIASES = {"pretrained": "transfer.pretrained"}


def _valid_keys(schema: Any, dotted: str) -> tuple[str, list[str]]:
    """The deepest existing section on the path ``dotted`` and its valid keys."""
    node = schema
    parts = dotted.split(".")
    section = []
    for part in parts[:-1]:
        if isinstance(node, DictConfig) and part in node and isinstance(node[part], DictConfig):
            node = node[part]
            section.append(part)
        else:
            break
    return ".".join(section) or "<root>", sorted(node.keys()) if isinstance(
        node, DictConfig
    ) else []


def _check_key(schema: DictConfig, dotted: str) -> None:
    """Fail on an override key the schema does not have, naming the valid keys of its section."""
    node: Any = schema
    for depth, part in enumerate(dotted.split(".")):
        if not isinstance(node, DictConfig):
            return  # inside a list or a free-form value: OmegaConf checks it
        if part not in node:
            section = ".".join(dotted.split(".")[:depth]) or "<root>"
            raise UserInputError(
                f"override: unknown config key '{dotted}'; valid keys in {section}: "
                + ", ".join(sorted(node.keys()))
            )
        node = node._get_node(part)


def check_renamed(key: str, where: str, value_is_mapping: bool = False) -> None:
    """Fail on a key of the flat ``data`` layout, naming its new key (``value_is_mapping``: the
    key is given a mapping, so ``data.source`` is the new section, not the old key)."""
    new = renamed(key, value_is_mapping)
    if new is not None:
        raise UserInputError(f"{where}: '{key}' was renamed; use '{new}'")


def _check_renamed_yaml(raw: DictConfig, where: str) -> None:
    data = raw._get_node("data") if "data" in raw else None
    if isinstance(data, DictConfig):
        for key in data.keys():
            check_renamed(f"data.{key}", where, isinstance(data._get_node(key), DictConfig))


def _error(schema: DictConfig, exc: OmegaConfBaseException, where: str) -> UserInputError:
    key = getattr(exc, "full_key", None) or ""
    msg = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    if isinstance(exc, ConfigAttributeError | ConfigKeyError):
        section, keys = _valid_keys(schema, key)
        return UserInputError(
            f"{where}: unknown config key '{key}'; valid keys in {section}: {', '.join(keys)}"
        )
    first = msg.splitlines()[0]
    return UserInputError(f"{where}: bad value for '{key}': {first}")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The YAML file and its `defaults:` chain, in merge order."""
    if not path.is_file():
        raise UserInputError(f"config file not found: {path}")
    if path in seen:
        raise UserInputError(f"config defaults form a cycle at {path}")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml parse errors
        raise UserInputError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, DictConfig):
        raise UserInputError(f"{path}: a config must be a mapping, got a list")
    chain: list[tuple[Path, DictConfig]] = []
    defaults = raw.pop("defaults", [])
    for ref in defaults or []:
        ref_path = (path.parent / ref) if (path.parent / ref).is_file() else CONFIGS_DIR / ref
        chain.extend(_read_yaml(ref_path, (*seen, path)))
    chain.append((path, raw))
    return chain


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    schema: type = RunConfig,
) -> Any:
    """Compose schema defaults, a YAML file (with its defaults chain) and CLI overrides.

    Returns the typed object (a dataclass instance) so code reads ``cfg.data.write.scale``.
    """
    base = OmegaConf.structured(schema)
    cfg = base
    if path is not None:
        for file, raw in _read_yaml(Path(path)):
            _check_renamed_yaml(raw, str(file))
            try:
                cfg = OmegaConf.merge(cfg, raw)
            except OmegaConfBaseException as exc:
                raise _error(base, exc, str(file)) from None
    dotlist = []
    for item in overrides:
        key, _, value = item.partition("=")
        check_renamed(key, "override", value.lstrip().startswith("{"))
        _check_key(base, ALIASES.get(key, key))
        if "=" not in item:
            raise UserInputError(
                f"override '{item}' must look like key=value (e.g. data.write.scale=0.1)"
            )
        key, value = item.split("=", 1)
        # `pretrained=` means the empty string (OmegaConf would read it as None)
        dotlist.append(f"{ALIASES.get(key, key)}={value if value else chr(39) * 2}")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as exc:
        raise _error(base, exc, "override") from None
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in choices:
            raise UserInputError(
                f"bad value '{value}' for '{key}'; valid choices: {', '.join(choices)}"
            )
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise UserInputError(f"missing required config values: {', '.join(sorted(missing))}")
    return OmegaConf.to_object(cfg)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


__all__ = [
    "MISSING",
    "ValidationError",
    "DataConfig",
    "SourceConfig",
    "VocabConfig",
    "DedupConfig",
    "WriteConfig",
    "LoadingConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "LoggingConfig",
    "TransferConfig",
    "RunConfig",
    "load_config",
    "to_yaml",
    "to_dict",
]

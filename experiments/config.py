"""Structured configs: the typed schema every YAML under configs/ composes onto.

A run config is one :class:`RunConfig`. YAML files may start with ``defaults: [other.yaml, ...]``
(paths relative to the file, or to the repository's ``configs/``), merged first, in order.
CLI overrides are OmegaConf dot-lists (``data.scale=0.1``). Unknown keys, wrong types and
missing files raise :class:`UserInputError` with a one-line message naming the key and the
valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf, ValidationError
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from datamodules.errors import UserInputError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"

DEFAULT_STOP_TAGS = [
    # Instagram-style tags that do not describe the image (the paper's examples and friends)
    "photooftheday",
    "tbt",
    "love",
    "instagood",
    "instadaily",
    "picoftheday",
    "follow",
    "like4like",
    "nofilter",
    "happy",
    "fun",
    "beautiful",
    "cute",
    "me",
    "selfie",
    # OpenClipart's non-descriptive keywords: file formats, tools, site vocabulary
    "svg",
    "clipart",
    "clip",
    "art",
    "clipartsvg",
    "icon",
    "icons",
    "hash",
    "magick",
    "theme",
    "image",
    "images",
    "picture",
    "pictures",
    "drawing",
    "illustration",
    "media",
    "png",
    "inkscape",
    "openclipart",
    "public",
    "domain",
    "publicdomain",
    "remix",
    "externalsource",
    "colour",
    "color",
    "black",
    "white",
    "blackandwhite",
    "symbol",
    "sign",
    "design",
    "simple",
    "cartoon",
    "line",
    "lineart",
    "outline",
    "silhouette",
    "shape",
    "shapes",
]


@dataclass
class DataConfig:
    """Where tagged images come from, how tags become labels, and how batches are drawn."""

    # --- source -----------------------------------------------------------------------------
    source: str = "openclipart"  # openclipart | synthetic | manifest | webdataset
    manifest: str = ""  # source=manifest: path to a .jsonl / .csv / .parquet file
    # source=webdataset: img2dataset-style tar shards (NNNNN.jpg + NNNNN.json and/or .txt):
    # one .tar, a brace-expanded list (/data/{00000..00031}.tar) or a folder of .tar files
    webdataset: str = ""
    webdataset_tags_field: str = "tags"  # .json field with the tags (a list or "a|b" string)
    # .json field with a caption whose #hashtags become tags ("" = none); a .txt member is a
    # caption too
    webdataset_caption_field: str = "caption"
    image_size: int = 64  # px: rasterization (openclipart) or render size (synthetic)
    num_images: int = 20000  # source=synthetic: images in the corpus (any number)
    synthetic_concepts: int = 300  # source=synthetic: WordNet synsets that appear in images
    zipf_exponent: float = 1.0  # source=synthetic: concept frequency ~ rank^-s
    holdout_fraction: float = 0.2  # share of each category held out for transfer
    # openclipart: whole category folders held out: their images never enter pretraining; they
    # are the openclipart_categories target (transfer to unseen classes)
    holdout_categories: list[str] = field(default_factory=list)
    cache_dir: str = ".cache"  # rasterized images, prepared shards (reused across runs)
    # --- vocabulary and labels ----------------------------------------------------------------
    vocab: str = "wordnet"  # in1k | wordnet | raw
    top_k: int = 0  # keep the K most frequent canonical hashtags (0 = all)
    min_count: int = 3  # a hashtag must occur at least this often in the corpus
    ambiguity: str = "first_sense"  # first_sense | drop: a hashtag naming several synsets
    stop_tags: list[str] = field(default_factory=lambda: list(DEFAULT_STOP_TAGS))
    max_tag_share: float = (
        0.25  # automatic noise criterion: tags on a larger share of images are dropped
    )
    drop_category_names: bool = True  # openclipart: folder names are not user tags
    max_labels: int = 8  # label width in the .beton (padded with -1; beyond it dropped)
    # --- dedup, scale, shards -----------------------------------------------------------------
    dedup: bool = True  # remove training images that near-duplicate an eval image
    dedup_hamming: int = 4  # perceptual-hash (dhash) Hamming threshold
    # eval sets to dedup against: target names or image folders; [] = the source's own targets
    # (openclipart: its held-out split; synthetic: its three tasks; manifest: none)
    dedup_targets: list[str] = field(default_factory=list)
    scale: float = 1.0  # <= 1: fraction of the corpus; > 1: absolute number of images
    val_fraction: float = 0.05  # share of the pretraining set held out for precision@k
    jpeg_quality: int = 90
    write_mode: str = "jpg"  # FFCV RGBImageField write mode: jpg | raw | smart
    shard_size: int = 0  # images per train .beton shard (0 = one shard); written in parallel
    # reading: recompute every train shard's checksum against manifest.json (reads every byte;
    # sizes, image counts and the vocabulary are always checked)
    verify_checksums: bool = False
    # --- loading ------------------------------------------------------------------------------
    resolution: int = 64  # crop size fed to the network
    crop_min_scale: float = 0.08  # RandomResizedCrop's smallest area share (ImageNet: 0.08)
    batch_size: int = 64  # per device
    num_workers: int = 2
    sampling: str = "sqrt"  # natural | sqrt | uniform
    sampling_combine: str = "mean"  # mean | max | sum: per-image weight from its hashtags' weights
    label_noise: float = 0.0  # probability of replacing each label with a random hashtag
    label_noise_dist: str = "natural"  # natural | uniform


@dataclass
class ModelConfig:
    """A ResNeXt in torchvision's layout: ResNet(Bottleneck, layers, groups, width_per_group)."""

    name: str = "rx-tiny"  # shows in run names
    layers: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    groups: int = 8
    width_per_group: int = 4
    stem_width: int = 32  # torchvision: 64
    base_planes: int = 64  # planes of the first stage (torchvision: 64; stages double it)
    small_input: bool = True  # 3x3 stride-1 stem, no max-pool (32-128 px inputs)
    zero_init_residual: bool = True  # last BN gamma of each residual block starts at 0
    loss: str = "softmax"  # softmax (multi-label softmax, the paper) | sigmoid (ablation)
    # sigmoid loss: classifier bias at logit(p) (lightning_modules/losses.py); p = the hashtag's
    # training-image frequency (frequency) or 1/V (uniform); none = the layer's default init
    sigmoid_prior: str = "frequency"
    weights: str = ""  # optional local torchvision/timm-layout state dict to start from


@dataclass
class OptimConfig:
    base_lr: float = 0.1  # per 256 images; lr = base_lr * global_batch / 256
    reference_batch: int = 256
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    wd_exclude_bn_bias: bool = True
    sigmoid_lr_mult: float = 1.0  # model.loss=sigmoid trains at base_lr x this (README: scan)


@dataclass
class ScheduleConfig:
    """Training length in images seen, not epochs."""

    images_seen: int = 200000  # 0 = use the paper's interpolation heuristic below
    warmup_images: int = 20000
    decay: str = "cosine"  # step | cosine
    decay_steps: int = 3  # step decay: number of equally spaced drops
    decay_factor: float = 0.1
    accumulate: int = 1  # gradient accumulation (global batch = batch * devices * nodes * this)
    # > 0: images per optimizer step whatever the world size; data.batch_size (per device) is
    # then derived as global_batch / (world size * accumulate), which must divide evenly
    global_batch: int = 0
    # heuristic: interpolate images seen on a log scale of dataset size between two extremes
    heuristic_small_dataset: int = 1_200_000
    heuristic_small_epochs: float = 120.0
    heuristic_large_dataset: int = 3_500_000_000
    heuristic_large_epochs: float = 2.0


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
class TransferConfig:
    pretrained: str = ""  # checkpoint, run dir, or torchvision/timm-layout state dict; "" = random
    protocol: str = "linear"  # linear (frozen features) | finetune
    # openclipart_images | openclipart_categories | fashion_mnist | imagefolder | synthetic_in | ...
    target: str = "openclipart_images"
    target_root: str = ""  # imagefolder: root with train/ and val/
    resolution: int = 64
    max_per_class: int = 0  # cap train images per class (0 = all)
    # linear probe
    features: str = "last"  # last | all (pool every stage)
    bn_recalibrate: bool = False  # re-estimate batch-norm statistics on target images
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
    folds: int = 0  # >1: k-fold on train+val, report mean and spread
    # fine-tuning
    lr: float = 0.01
    backbone_lr_mult: float = 0.1
    images_seen: int = 50000
    batch_size: int = 64


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


# String knobs with a closed set of values; checked after composition.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.source": ("openclipart", "synthetic", "manifest", "webdataset"),
    "data.vocab": ("in1k", "wordnet", "raw"),
    "data.ambiguity": ("first_sense", "drop"),
    "data.write_mode": ("jpg", "raw", "smart"),
    "data.sampling": ("natural", "sqrt", "uniform"),
    "data.sampling_combine": ("mean", "max", "sum"),
    "data.label_noise_dist": ("natural", "uniform"),
    "model.loss": ("softmax", "sigmoid"),
    "model.sigmoid_prior": ("frequency", "uniform", "none"),
    "schedule.decay": ("step", "cosine"),
    "transfer.protocol": ("linear", "finetune"),
    "transfer.features": ("last", "all"),
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

    Returns the typed object (a dataclass instance) so code reads ``cfg.data.scale``.
    """
    base = OmegaConf.structured(schema)
    cfg = base
    if path is not None:
        for file, raw in _read_yaml(Path(path)):
            try:
                cfg = OmegaConf.merge(cfg, raw)
            except OmegaConfBaseException as exc:
                raise _error(base, exc, str(file)) from None
    dotlist = []
    for item in overrides:
        key = item.split("=", 1)[0]
        _check_key(base, ALIASES.get(key, key))
        if "=" not in item:
            raise UserInputError(
                f"override '{item}' must look like key=value (e.g. data.scale=0.1)"
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

"""The ``data`` section of a run config: one sub-section per pipeline stage.

``data.source`` (where tagged images come from), ``data.vocab`` (how tags become labels),
``data.dedup`` (which training images near-duplicate an evaluation image), ``data.write`` (the
scale subset and the FFCV files) and ``data.loading`` (how batches are drawn); ``data.cache_dir``
is shared by all. Each prepare stage's cache key is the hash of its own section
(:mod:`datamodules.prepare.chain`), so a field belongs to the section of the stage it changes.
The flat layout these sections replaced is mapped key by key in :mod:`datamodules.data_legacy`.

The closed choices of this section are defined here, once; the code that implements each one
imports its tuple from here (``experiments.config`` checks a composed config against them).
This module imports nothing heavy: the config loader reads it on every CLI call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCES = ("openclipart", "synthetic", "manifest", "webdataset")
VOCABS = ("in1k", "wordnet", "raw")
AMBIGUITY_RULES = ("first_sense", "drop")
WRITE_MODES = ("jpg", "raw", "smart")  # FFCV RGBImageField write modes
SAMPLING_MODES = ("natural", "sqrt", "uniform")
COMBINE_MODES = ("mean", "max", "sum")
NOISE_DISTS = ("natural", "uniform")

# section -> field -> its closed set of values
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "source": {"name": SOURCES},
    "vocab": {"name": VOCABS, "ambiguity": AMBIGUITY_RULES},
    "write": {"mode": WRITE_MODES},
    "loading": {
        "sampling": SAMPLING_MODES,
        "sampling_combine": COMBINE_MODES,
        "label_noise_dist": NOISE_DISTS,
    },
}

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
class SourceConfig:
    """``data.source``: where tagged images come from (the scan stage's key)."""

    name: str = "openclipart"  # openclipart | synthetic | manifest | webdataset
    manifest: str = ""  # name=manifest: path to a .jsonl / .csv / .parquet file
    # name=webdataset: img2dataset-style tar shards (NNNNN.jpg + NNNNN.json and/or .txt):
    # one .tar, a brace-expanded list (/data/{00000..00031}.tar) or a folder of .tar files
    webdataset: str = ""
    webdataset_tags_field: str = "tags"  # .json field with the tags (a list or "a|b" string)
    # .json field with a caption whose #hashtags become tags ("" = none); a .txt member is a
    # caption too
    webdataset_caption_field: str = "caption"
    image_size: int = 64  # px: rasterization (openclipart) or render size (synthetic)
    num_images: int = 20000  # name=synthetic: images in the corpus (any number)
    synthetic_concepts: int = 300  # name=synthetic: WordNet synsets that appear in images
    zipf_exponent: float = 1.0  # name=synthetic: concept frequency ~ rank^-s
    holdout_fraction: float = 0.2  # share of each category held out for transfer
    # openclipart: whole category folders held out: their images never enter pretraining; they
    # are the openclipart_categories target (transfer to unseen classes)
    holdout_categories: list[str] = field(default_factory=list)


@dataclass
class VocabConfig:
    """``data.vocab``: how tags become labels (the vocabulary stage's key)."""

    name: str = "wordnet"  # in1k | wordnet | raw
    top_k: int = 0  # keep the K most frequent canonical hashtags (0 = all)
    min_count: int = 3  # a hashtag must occur at least this often in the corpus
    ambiguity: str = "first_sense"  # first_sense | drop: a hashtag naming several synsets
    stop_tags: list[str] = field(default_factory=lambda: list(DEFAULT_STOP_TAGS))
    max_tag_share: float = (
        0.25  # automatic noise criterion: tags on a larger share of images are dropped
    )
    drop_category_names: bool = True  # openclipart: folder names are not user tags


@dataclass
class DedupConfig:
    """``data.dedup``: training images that near-duplicate an evaluation image are removed
    (the dedup stage's key)."""

    enabled: bool = True  # remove training images that near-duplicate an eval image
    hamming: int = 4  # perceptual-hash (dhash) Hamming threshold
    # eval sets to dedup against: target names or image folders; [] = the source's own targets
    # (openclipart: its held-out split; synthetic: its three tasks; manifest: none)
    targets: list[str] = field(default_factory=list)


@dataclass
class WriteConfig:
    """``data.write``: the scale subset, the train/val split and the .beton files (the write
    stage's key)."""

    scale: float = 1.0  # <= 1: fraction of the corpus; > 1: absolute number of images
    val_fraction: float = 0.05  # share of the pretraining set held out for precision@k
    max_labels: int = 8  # label width in the .beton (padded with -1; beyond it dropped)
    jpeg_quality: int = 90
    mode: str = "jpg"  # FFCV RGBImageField write mode: jpg | raw | smart
    shard_size: int = 0  # images per train .beton shard (0 = one shard); written in parallel


@dataclass
class LoadingConfig:
    """``data.loading``: how training batches are drawn from the prepared files (no stage's
    key: changing it reuses every prepared folder)."""

    resolution: int = 64  # crop size fed to the network
    crop_min_scale: float = 0.08  # RandomResizedCrop's smallest area share (ImageNet: 0.08)
    batch_size: int = 64  # per device
    num_workers: int = 2
    sampling: str = "sqrt"  # natural | sqrt | uniform
    sampling_combine: str = "mean"  # mean | max | sum: per-image weight from its hashtags' weights
    label_noise: float = 0.0  # probability of replacing each label with a random hashtag
    label_noise_dist: str = "natural"  # natural | uniform
    # recompute every train shard's checksum against manifest.json (reads every byte; sizes,
    # image counts and the vocabulary are always checked)
    verify_checksums: bool = False


@dataclass
class DataConfig:
    """Where tagged images come from, how tags become labels, and how batches are drawn: one
    section per stage, and the cache every stage shares."""

    cache_dir: str = ".cache"  # rasterized images, prepared shards (reused across runs)
    source: SourceConfig = field(default_factory=SourceConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    write: WriteConfig = field(default_factory=WriteConfig)
    loading: LoadingConfig = field(default_factory=LoadingConfig)


# the sections in pipeline order: name -> schema
SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "vocab": VocabConfig,
    "dedup": DedupConfig,
    "write": WriteConfig,
    "loading": LoadingConfig,
}

"""The paper's claims that :mod:`experiments.findings` tests: for each, how runs are paired,
which way the paper says it goes and how far."""

from __future__ import annotations

from dataclasses import dataclass

from datamodules.axes import COLUMNS as AXIS_COLUMNS

# Setup columns that identify a pretraining recipe: the paper's axes (datamodules.axes) but the
# seed (seeds are matched separately) and images (the measured size of the scale axis), plus the
# pretraining budget.
SETUP = [*(c for c in AXIS_COLUMNS if c not in ("images", "seed")), "images_seen"]
SEEDS = ["seed", "transfer_seed"]


@dataclass(frozen=True)
class Claim:
    """One claim: how to pair runs, which way the paper says it goes, and how far.

    ``kind``: ``pair`` (``treat`` vs ``control`` values of ``axis``), ``extremes`` (largest vs
    smallest ``order_by`` at the largest scale), ``slope`` (per-seed slope vs log10 images) or
    ``baseline`` (hashtag pretraining at the largest scale vs the random-init baseline of the
    same seed and probe, batch-norm statistics re-estimated where such runs exist).
    ``direction``: +1 the paper reports a gain (treatment above control / accuracy rising),
    -1 a cost. ``size``: the paper's figure as a (low, high) range in points, signed, or None."""

    key: str
    claim: str
    paper: str
    axis: str
    kind: str = "pair"
    treat: object = None
    control: object = None
    tied: tuple[str, ...] = ()  # setup columns that change with the axis
    order_by: str = ""
    direction: int = 1
    size: tuple[float, float] | None = None

    def comparison(self) -> str:
        if self.kind == "slope":
            return "slope of top-1 vs log10(images), points per 10x images, per seed"
        if self.kind == "extremes":
            return f"largest vs smallest {self.order_by}, at the largest scale run"
        if self.kind == "baseline":
            return "hashtag-pretrained (largest scale) − random init (BN re-estimated), same probe"
        return f"{self.axis} {self.treat} − {self.control}"


CLAIMS = [
    Claim(
        "baseline",
        "hashtag pretraining beats the strongest random-init baseline",
        "the paper's premise (it compares with ImageNet pretraining, not random init); "
        "this project's bar at mini scale: +10 points",
        axis="init",
        kind="baseline",
    ),
    Claim(
        "scale",
        "transfer accuracy grows log-linearly with pretraining images",
        "roughly linear in log(images), a few million to 3.5B images; slope not given",
        axis="scale",
        kind="slope",
        tied=("images_seen",),  # the budget may follow the dataset size
    ),
    Claim(
        "vocab",
        "a bigger hashtag vocabulary helps at scale",
        "17k > 1.5k hashtags at the largest scales; size not given",
        axis="vocab",
        kind="extremes",
        tied=("vocab_size",),
        order_by="vocab_size",
    ),
    Claim(
        "sampling_sqrt",
        "square-root sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        axis="sampling",
        treat="sqrt",
        control="natural",
        size=(5.0, 6.0),
    ),
    Claim(
        "sampling_uniform",
        "uniform sampling beats natural",
        "+5 to +6 points (ImageNet transfer)",
        axis="sampling",
        treat="uniform",
        control="natural",
        size=(5.0, 6.0),
    ),
    Claim(
        "noise_10",
        "10% label noise costs little",
        "less than 1 point lost (range used: 0 to −1)",
        axis="label_noise",
        treat=0.1,
        control=0.0,
        direction=-1,
        size=(-1.0, 0.0),
    ),
    Claim(
        "noise_25",
        "25% label noise costs about 2 points",
        "about −2 points (range used: −3 to −1)",
        axis="label_noise",
        treat=0.25,
        control=0.0,
        direction=-1,
        size=(-3.0, -1.0),
    ),
    Claim(
        "noise_50",
        "50% label noise costs more",
        "not in the paper's verified sources; direction assumed (a cost)",
        axis="label_noise",
        treat=0.5,
        control=0.0,
        direction=-1,
    ),
    Claim(
        "width",
        "a wider model helps at scale",
        "32x16d > 32x8d > 32x4d, more so with more data; size not given",
        axis="width_per_group",
        kind="extremes",
        tied=("model",),
        order_by="width_per_group",
    ),
    Claim(
        "loss",
        "multi-label softmax beats per-hashtag sigmoid",
        "softmax better; size not given",
        axis="loss",
        treat="softmax",
        control="sigmoid",
    ),
]

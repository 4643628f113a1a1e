"""`python -m experiments quickstart`: the main job, from real user tags to a transfer table.

On one CPU machine with no data of the user's it:

1. prepares OpenClipart's real user tags (rasterized once and cached): vocabulary, dedup
   against the held-out transfer split, .beton shards (``--data synthetic`` uses the synthetic
   WordNet hashtag world instead);
2. pretrains a small ResNeXt with the multi-label softmax over hashtags (square-root sampling),
   and optionally one ablation (``--ablation natural|sigmoid``: a second pretraining run);
3. runs feature transfer (linear probe) on OpenClipart's two held-out targets (held-out images
   of the pretraining categories; whole categories pretraining never saw) and on
   Fashion-MNIST, for both pretrained networks and for random-init baselines (the strong
   baseline: batch-norm statistics re-estimated on target images of the probe's training part,
   every stage pooled; two seeds), with the same feature protocols for every network;
4. prints a results table, writes it (Markdown, CSV) and a figure (PNG) into its run directory.

Every stage is a regular run under ``--runs-dir`` (``runs/quickstart-<data>/`` by default), so a
re-run reuses what is complete: cached rasters and shards, finished pretraining and transfer runs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

from experiments.config import REPO_ROOT, RunConfig, load_config
from experiments.rundir import atomic_write_text

PRETRAIN_CONFIGS = {
    "openclipart": REPO_ROOT / "configs/pretrain/quickstart_openclipart.yaml",
    "synthetic": REPO_ROOT / "configs/pretrain/quickstart_synthetic.yaml",
}
TARGETS = {  # target name -> transfer config
    "openclipart": {
        "openclipart_images": REPO_ROOT / "configs/transfer/linear_openclipart_images.yaml",
        "openclipart_categories": REPO_ROOT / "configs/transfer/linear_openclipart_categories.yaml",
        "fashion_mnist": REPO_ROOT / "configs/transfer/linear_fashion_mnist.yaml",
    },
    "synthetic": {
        "synthetic_in": REPO_ROOT / "configs/transfer/linear_synthetic_in.yaml",
        "fashion_mnist": REPO_ROOT / "configs/transfer/linear_fashion_mnist.yaml",
    },
}
ABLATIONS = {"natural": ["data.loading.sampling=natural"], "sigmoid": ["model.loss=sigmoid"]}


@dataclasses.dataclass
class Plan:
    """What one quickstart run does; everything comes from the flags."""

    data: str
    runs_dir: Path
    images_seen: int | None
    ablation: str
    seeds: list[int]
    features: list[str]
    max_per_class: int
    overrides: list[str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", choices=sorted(PRETRAIN_CONFIGS), default="openclipart")
    parser.add_argument(
        "--images-seen",
        type=int,
        default=None,
        help="pretraining budget in images seen (default: the quickstart config's)",
    )
    parser.add_argument(
        "--ablation",
        choices=[*ABLATIONS, "none"],
        default="none",
        help="one ablation row, a second pretraining run (doubles the pretraining time): "
        "natural instead of square-root sampling, or the sigmoid loss (default: none)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the random-init baseline"
    )
    parser.add_argument(
        "--features",
        nargs="+",
        choices=["last", "all"],
        default=["all"],
        help="feature protocols probed for every network: all = every stage pooled (the strong "
        "protocol, default); add `last` for the last stage alone",
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=500,
        help="cap on train images per class of each target (Fashion-MNIST has 6,000)",
    )
    parser.add_argument("--runs-dir", default=None, help="default: runs/quickstart-<data>")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="dot-list overrides for the pretraining config (data.*, model.*)",
    )


def plan_from_args(args: argparse.Namespace) -> Plan:
    return Plan(
        data=args.data,
        runs_dir=Path(args.runs_dir or f"runs/quickstart-{args.data}"),
        images_seen=args.images_seen,
        ablation=args.ablation,
        seeds=list(args.seeds),
        features=list(args.features),
        max_per_class=args.max_per_class,
        overrides=list(args.overrides),
    )


def _banner(step: int, total: int, text: str) -> None:
    print(f"\n[quickstart {step}/{total}] {text}", flush=True)


def pretrain_configs(plan: Plan) -> dict[str, RunConfig]:
    """The hashtag-pretraining runs: the main recipe and its ablation, by row label."""
    base = [f"runs_dir={plan.runs_dir}", *plan.overrides]
    if plan.images_seen is not None:
        base.append(f"schedule.images_seen={plan.images_seen}")
    path = PRETRAIN_CONFIGS[plan.data]
    runs = {"hashtag": load_config(path, [*base, "name=pretrain-hashtag"])}
    if plan.ablation != "none":
        runs[f"hashtag-{plan.ablation}"] = load_config(
            path, [*base, *ABLATIONS[plan.ablation], f"name=pretrain-hashtag-{plan.ablation}"]
        )
    return runs


def transfer_configs(plan: Plan, pretrained: dict[str, Path], main: RunConfig) -> list[RunConfig]:
    """Linear probes: every network x target x feature protocol (random init: every seed)."""
    inits: list[tuple[str, str, int]] = [
        (label, str(p), main.seed) for label, p in pretrained.items()
    ]
    inits += [(f"random-s{seed}", "", seed) for seed in plan.seeds]
    out = []
    for target, path in TARGETS[plan.data].items():
        for label, weights, seed in inits:
            for features in plan.features:
                cfg = load_config(
                    path,
                    [
                        f"runs_dir={plan.runs_dir}",
                        f"name=transfer-{label}-{target}-{features}",
                        f"seed={seed}",
                        f"transfer.features={features}",
                        # a random network is judged at its strongest: BN statistics of the target
                        f"transfer.bn_recalibrate={'false' if weights else 'true'}",
                        f"transfer.resolution={main.data.loading.resolution}",
                        f"transfer.max_per_class={plan.max_per_class}",
                    ],
                )
                cfg.transfer.pretrained = weights
                cfg.model = dataclasses.replace(main.model)
                # the pretraining corpus's data settings: the same held-out split and cache
                cfg.data = copy.deepcopy(main.data)  # its sections too
                out.append(cfg)
    return out


def resolved_configs(args: argparse.Namespace) -> list[tuple[str, object]]:
    """``--print-config``: every run's config, pretraining first."""
    plan = plan_from_args(args)
    pre = pretrain_configs(plan)
    runs = {label: Path(cfg.runs_dir) / cfg.name for label, cfg in pre.items()}
    configs = [*pre.values(), *transfer_configs(plan, runs, pre["hashtag"])]
    return [(cfg.name, cfg) for cfg in configs]


def run(args: argparse.Namespace) -> int:
    from experiments.pretrain import run_pretrain
    from experiments.transfer import run_transfer

    plan = plan_from_args(args)
    start = time.time()
    pre = pretrain_configs(plan)
    main_cfg = pre["hashtag"]
    total = 4
    _banner(
        1,
        total,
        f"prepare {plan.data}: tags -> vocabulary -> dedup -> .beton (cached for later runs)",
    )
    from datamodules.prepare import ensure_prepared

    prepared = ensure_prepared(main_cfg.data, main_cfg.seed)
    print(f"prepared data: {prepared}")

    _banner(2, total, f"pretrain {len(pre)} network(s) on hashtags: {', '.join(pre)}")
    pretrained = {label: run_pretrain(cfg) for label, cfg in pre.items()}

    transfers = transfer_configs(plan, pretrained, main_cfg)
    _banner(3, total, f"linear probes: {len(transfers)} (networks x targets x feature protocols)")
    for i, cfg in enumerate(transfers, 1):
        print(f"  probe {i}/{len(transfers)}: {cfg.name}", flush=True)
        run_transfer(cfg)

    _banner(4, total, "results")
    from experiments.quickstart_report import write_report

    paths = write_report(plan.runs_dir, title=f"quickstart on {plan.data}")
    print(paths["markdown"].read_text())
    elapsed = time.time() - start
    summary = [
        f"quickstart finished in {elapsed / 60:.1f} min",
        f"  table:   {paths['markdown']} (and {paths['csv'].name})",
        f"  figure:  {paths['figure']}",
        f"  runs:    {plan.runs_dir}/*/ (config.yaml, metrics.json, checkpoints/, logs/)",
        f"  data:    {prepared}",
        "  rebuild: python -m experiments tables configs/tables/mini.yaml "
        f"runs_dir={plan.runs_dir}",
    ]
    print("\n".join(summary))
    atomic_write_text(plan.runs_dir / "SUMMARY.txt", "\n".join(summary) + "\n")
    return 0

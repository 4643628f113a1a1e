"""`python -m experiments bench corpus`: prepare a synthetic corpus in many shards, read an epoch.

``prepare`` builds ``--images`` synthetic images (``--size`` px, raw hashtags, no dedup) into
``--shards`` train shards (``data.write.shard_size`` = training images / shards: estimated first;
when the unlabeled images make the count come out different, the write stage alone runs again
with the exact size, and both passes are reported), scanning and writing in
parallel with ``--processes`` processes; then a HashtagDataModule reads one resampled epoch
(``data.loading.sampling=sqrt``) of crops through the one FFCV Loader over every shard. Both
times are printed, with prepare's time per stage and the loader's first batch (FFCV's compile).
The prepared folder is cached under ``--cache-dir`` (a rerun times the read alone; delete the
folder to time prepare again).

The issue's figure: ``--images 1000000 --shards 32``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="stored image side (px)")
    parser.add_argument("--resolution", type=int, default=32, help="crop side (px)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="loader threads")
    parser.add_argument("--cache-dir", default=".cache/bench-corpus")


def _config(args: argparse.Namespace):
    from experiments.config import (
        DataConfig,
        DedupConfig,
        LoadingConfig,
        SourceConfig,
        VocabConfig,
        WriteConfig,
    )

    train = round(args.images * 0.95)  # the default val_fraction; the train count is close
    return DataConfig(
        cache_dir=args.cache_dir,
        source=SourceConfig(name="synthetic", num_images=args.images, image_size=args.size),
        vocab=VocabConfig(name="raw", min_count=1, max_tag_share=0.0),
        dedup=DedupConfig(enabled=False),
        write=WriteConfig(shard_size=-(-train // args.shards)),
        loading=LoadingConfig(
            resolution=args.resolution,
            batch_size=args.batch,
            num_workers=args.workers,
            sampling="sqrt",
        ),
    )


def run(args: argparse.Namespace) -> dict:
    from datamodules.prepare import ensure_prepared, prepared_dir
    from datamodules.pretrain import HashtagDataModule

    def prepare_timed():
        """(prepared folder, seconds, its manifest, whether it existed before)."""
        existed = (prepared_dir(cfg, 0) / "manifest.json").is_file()
        start = time.perf_counter()
        folder = ensure_prepared(
            cfg,
            0,
            progress=True,
            num_shards=args.processes,
            launcher_options={"workers": args.processes},
        )
        manifest = json.loads((folder / "manifest.json").read_text())
        return folder, time.perf_counter() - start, manifest, existed

    cfg = _config(args)
    folder, prepare_s, manifest, existed = prepare_timed()
    first_pass = None
    if len(manifest["train"]) != args.shards:  # unlabeled images made fewer training images
        first_pass = {
            "shards": len(manifest["train"]),
            "prepare_s": None if existed else round(prepare_s, 1),
            "stages_s": {k: v["seconds"] for k, v in manifest["stats"]["stages"].items()},
        }
        cfg.write.shard_size = -(-int(manifest["num_train"]) // args.shards)
        # scan, vocab and dedup are reused: the write stage only
        folder, prepare_s, manifest, existed = prepare_timed()

    start = time.perf_counter()
    dm = HashtagDataModule(cfg, seed=0, prepared_dir=folder)
    batches = dm.train_dataloader()
    setup_s = time.perf_counter() - start
    seen, first_batch_s = 0, None
    for images, _ in tqdm(batches, desc="read one epoch", unit="batch"):
        seen += len(images)
        if first_batch_s is None:
            first_batch_s = time.perf_counter() - start
    read_s = time.perf_counter() - start
    return {
        "images": args.images,
        "train_images": manifest["num_train"],
        "shards": len(manifest["train"]),
        "size_px": args.size,
        "cpu_count": os.cpu_count(),
        "prepare_processes": args.processes,
        "prepare_s": None if existed else round(prepare_s, 1),
        "prepare_stages_s": {k: v["seconds"] for k, v in manifest["stats"]["stages"].items()},
        "first_pass_with_estimated_shard_size": first_pass,
        "read_epoch_s": round(read_s, 1),
        "read_setup_s": round(setup_s, 2),
        "read_first_batch_s": round(first_batch_s or 0.0, 2),
        "read_images": seen,
        "read_images_per_s": round(seen / read_s, 1),
        "bytes_on_disk": sum(e.get("bytes", 0) for e in manifest["train"]),
        "sampler_bytes_per_image": round(dm.sampler.nbytes / manifest["num_train"], 2),
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
    }

"""`python -m experiments bench loader`: HashtagDataModule's FFCV loader vs a PIL DataLoader vs
the JPEG decode limit, on the same images and crop size.

1. ``ffcv``: HashtagDataModule's training loader (random resized crop + flip, uint8 NCHW,
   ``--workers`` threads).
2. ``pil``: a torch DataLoader with ``--workers`` processes doing the same work with PIL
   (open JPEG, RandomResizedCrop and horizontal flip on the PIL image, uint8 tensor: the
   classic torchvision recipe); ``pil_tensor_ops``: the same DataLoader, but the decoded image
   becomes a tensor first and torchvision's tensor kernels crop, resize and flip it (faster
   here; reported so neither baseline flatters the ratio).
3. ``decode_limit``: the single-core libjpeg-turbo decode rate (``cv2.imdecode``, one thread)
   times ``--workers``: no loader that decodes full images can beat it.

``--shards N`` (N > 1) measures instead the same images written as one .beton and as N shards
(``datamodules.ffcv_shards``: one Loader over the N files), side by side: images/s of each
(the two loaders take turns epoch by epoch, median of ``--epochs``), and
FFCV's compile cost: building the loader plus its first batch, once per run for the N shards,
against one plain FFCV Loader per shard (the alternative that compiles once per shard).

Images: ``--images`` natural-looking (smooth random fields with edges and grain) JPEGs of
``--size`` px at quality 90, cached under ``--cache-dir``. Rates are images/s over one epoch
after a warm-up epoch (which pays FFCV's compile and the OS page cache), the median of
``--epochs`` epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

VOCAB = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256, help="stored image side (px)")
    parser.add_argument("--resolution", type=int, default=224, help="crop side fed to the net")
    parser.add_argument(
        "--batch", type=int, default=24, help="per loader (default: the paper's per-GPU batch)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
    parser.add_argument("--cache-dir", default=".cache/bench-loader")
    parser.add_argument(
        "--shards", type=int, default=1, help="N > 1: one .beton vs N shards of the same images"
    )


def _image(k: int, size: int) -> np.ndarray:
    """A compressible, natural-looking RGB image: low-frequency colour fields, a few sharp
    shapes, fine grain (JPEG size ~ real photos', unlike pure noise)."""
    import cv2

    rng = np.random.default_rng(k)
    base = rng.random((6, 6, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC) * 200
    for _ in range(4):
        center = tuple(int(c) for c in rng.integers(0, size, 2))
        colour = tuple(float(c) for c in rng.integers(0, 255, 3))
        cv2.circle(img, center, int(rng.integers(size // 16, size // 4)), colour, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


class _Corpus:
    """(rgb, labels, sample_id) rows read back from the cached JPEG files."""

    def __init__(self, files: list[str]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import cv2

        bgr = cv2.imread(self.files[i], cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[:, :, ::-1]), _labels(i), i


class _Slice:
    """Rows ``first .. first + count`` of a corpus, keeping their global sample ids."""

    def __init__(self, corpus: _Corpus, first: int, count: int):
        self.corpus, self.first, self.count = corpus, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        return self.corpus[self.first + i]


def _write_beton(path: str, files: list[str], size: int, first: int = 0, count: int = 0) -> dict:
    from datamodules.ffcv_store import write_hashtag_beton

    rows = _Slice(_Corpus(files), first, count or len(files))
    return write_hashtag_beton(
        path, rows, max_labels=4, max_resolution=size, jpeg_quality=90, write_mode="jpg"
    )


def _write_shards(folder: str, files: list[str], size: int, shards: int) -> list[dict]:
    per = -(-len(files) // shards)
    entries = []
    for s in range(shards):
        first, count = s * per, min(per, len(files) - s * per)
        _write_beton(f"{folder}/train-{s:03d}.beton", files, size, first, count)
        entries.append({"file": f"train-{s:03d}.beton", "count": count, "first_sample_id": first})
    return entries


def _prepare(folder: Path, count: int, size: int) -> tuple[Path, list[str]]:
    """JPEG files + a prepared folder (train .beton of the same images, manifest)."""
    import cv2

    from datamodules.ffcv_store import run_in_fresh_process

    folder = folder / f"n{count}-s{size}"
    jpegs = folder / "jpeg"
    jpegs.mkdir(parents=True, exist_ok=True)
    files = [str(jpegs / f"{k:06d}.jpg") for k in range(count)]
    for k, file in enumerate(tqdm(files, desc="render images", unit="img")):
        if not os.path.exists(file):
            bgr = _image(k, size)[:, :, ::-1]
            cv2.imwrite(file + ".tmp.jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            os.replace(file + ".tmp.jpg", file)
    if not (folder / "manifest.json").is_file():
        run_in_fresh_process(_write_beton, str(folder / "train.beton"), files, size)
        _write_manifest(folder, [{"file": "train.beton", "count": count}], count)
    return folder, files


def _write_manifest(folder: Path, train: list[dict], count: int) -> None:
    counts = np.zeros(VOCAB, np.int64)
    for i in range(count):
        counts[_labels(i)] += 1
    manifest = {
        "train": train,
        "val": {"file": "train.beton", "count": count},
        "num_train": count,
        "max_labels": 4,
        "vocab_size": VOCAB,
        "hashtag_counts": counts.tolist(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _prepare_shards(folder: Path, files: list[str], size: int, shards: int) -> Path:
    """The same images as ``shards`` train shards (val: the first shard), in ``folder``."""
    from datamodules.ffcv_store import run_in_fresh_process

    out = folder / f"shards{shards}"
    if not (out / "manifest.json").is_file():
        out.mkdir(exist_ok=True)
        entries = run_in_fresh_process(_write_shards, str(out), files, size, shards)
        _write_manifest(out, entries, len(files))
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["val"] = {"file": "train-000.beton", "count": entries[0]["count"]}
        (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _labels(i: int) -> list[int]:
    return sorted(np.random.default_rng(i).choice(VOCAB, size=1 + i % 3, replace=False).tolist())


def _rate(batches, epochs: int) -> float:
    """images/s over full passes of ``batches`` (batches of images first): one untimed warm-up
    pass (FFCV's compile, the page cache, worker start-up), then the median of ``epochs``."""
    rates = []
    for timed in [False] + [True] * epochs:
        start, seen = time.perf_counter(), 0
        for batch in batches:
            seen += len(batch[0])
        if timed:
            rates.append(seen / (time.perf_counter() - start))
    return float(np.median(rates))


def _datamodule(folder: Path, args):
    from datamodules.pretrain import HashtagDataModule
    from experiments.config import DataConfig, LoadingConfig

    cfg = DataConfig(
        loading=LoadingConfig(
            batch_size=args.batch,
            num_workers=args.workers,
            resolution=args.resolution,
            sampling="natural",
        )
    )
    return HashtagDataModule(cfg, seed=0, prepared_dir=folder)


def _interleaved_rates(loaders: list, epochs: int) -> list[float]:
    """Median images/s of each loader over ``epochs`` epochs, the loaders taking turns epoch by
    epoch (after one untimed warm-up epoch each), so a neighbour's load on a shared machine
    falls on both alike."""
    rates: list[list[float]] = [[] for _ in loaders]
    for timed in [False] + [True] * epochs:
        for k, batches in enumerate(loaders):
            start, seen = time.perf_counter(), 0
            for batch in batches:
                seen += len(batch[0])
            if timed:
                rates[k].append(seen / (time.perf_counter() - start))
    return [float(np.median(r)) for r in rates]


def _ffcv_rate(folder: Path, args) -> float:
    return _rate(_datamodule(folder, args).train_dataloader(), args.epochs)


def _first_batch_s(make) -> float:
    """Seconds to build a loader and get its first batch (FFCV compiles on the first)."""
    start = time.perf_counter()
    iterator = iter(make())
    next(iterator)
    seconds = time.perf_counter() - start
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
    return seconds


def _compile_costs(sharded: Path, args) -> dict:
    """Loader build + first batch: the N-shard loader in its first and second epoch, and one
    plain FFCV Loader per shard (each compiles its own pipeline)."""
    from ffcv.loader import Loader, OrderOption

    from datamodules.ffcv_read import int_pipeline, labels_pipeline, train_image_pipeline

    batches = _datamodule(sharded, args).train_dataloader()
    first = _first_batch_s(lambda: batches)
    second = _first_batch_s(lambda: batches)
    manifest = json.loads((sharded / "manifest.json").read_text())
    per_shard = []
    for entry in manifest["train"]:
        pipelines = {
            "image": train_image_pipeline(args.resolution),
            "labels": labels_pipeline(),
            "num_labels": None,
            "sample_id": int_pipeline(),
        }
        path = str(sharded / entry["file"])
        per_shard.append(
            _first_batch_s(
                lambda p=path, pl=pipelines: Loader(
                    p,
                    batch_size=args.batch,
                    num_workers=args.workers,
                    order=OrderOption.RANDOM,
                    pipelines=pl,
                    seed=0,
                )
            )
        )
    return {
        "sharded_loader_first_epoch_s": round(first, 3),
        "sharded_loader_second_epoch_s": round(second, 3),
        "loader_per_shard_s_each": [round(x, 3) for x in per_shard],
        "loader_per_shard_total_s": round(sum(per_shard), 3),
    }


def run_shards(args: argparse.Namespace) -> dict:
    folder, files = _prepare(Path(args.cache_dir), args.images, args.size)
    sharded = _prepare_shards(folder, files, args.size, args.shards)
    loaders = [_datamodule(p, args).train_dataloader() for p in (folder, sharded)]
    one, many = _interleaved_rates(loaders, args.epochs)
    return {
        "images": args.images,
        "stored_px": args.size,
        "crop_px": args.resolution,
        "workers": args.workers,
        "batch": args.batch,
        "timed_epochs": args.epochs,
        "shards": args.shards,
        "one_shard_images_per_s": round(one, 1),
        f"{args.shards}_shards_images_per_s": round(many, 1),
        "shards_over_one": round(many / one, 3),
        "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
        "compile": _compile_costs(sharded, args),
        "loaders_compared": len(loaders),
    }


class _PilImages:
    """JPEG files -> uint8 CHW crops. ``pil``: PIL does the crop, resize and flip (torchvision's
    classic ImageNet recipe) and the result becomes a tensor; ``tensor_ops``: the decoded image
    becomes a tensor first and torchvision's v2 tensor kernels crop, resize and flip it."""

    def __init__(self, files: list[str], resolution: int, variant: str):
        from torchvision.transforms import v2

        self.files = files
        crop_flip = [v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip()]
        steps = (
            crop_flip + [v2.PILToTensor()] if variant == "pil" else [v2.PILToTensor(), *crop_flip]
        )
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return self.transform(im.convert("RGB")), i


def _pil_rate(files: list[str], args, variant: str) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _PilImages(files, args.resolution, variant),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        drop_last=True,
    )
    return _rate(loader, args.epochs)


def _decode_rate(files: list[str]) -> float:
    """Single-core libjpeg-turbo decode rate (cv2 with one thread), images/s."""
    import cv2

    blobs = [np.fromfile(f, dtype=np.uint8) for f in files]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for blob in blobs[:50]:
            cv2.imdecode(blob, cv2.IMREAD_COLOR)
        start = time.perf_counter()
        for blob in blobs:
            cv2.imdecode(blob, cv2.IMREAD_COLOR)
        return len(blobs) / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)


def run(args: argparse.Namespace) -> dict:
    if args.shards > 1:
        return run_shards(args)
    folder, files = _prepare(Path(args.cache_dir), args.images, args.size)
    jpeg_kb = float(np.mean([os.path.getsize(f) for f in files]) / 1024)
    decode_1 = _decode_rate(files)
    ffcv = _ffcv_rate(folder, args)
    pil = _pil_rate(files, args, "pil")
    tensor_ops = _pil_rate(files, args, "tensor_ops")
    limit = decode_1 * args.workers
    return {
        "images": args.images,
        "stored_px": args.size,
        "crop_px": args.resolution,
        "mean_jpeg_kb": round(jpeg_kb, 1),
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "batch": args.batch,
        "timed_epochs": args.epochs,
        "ffcv_images_per_s": round(ffcv, 1),
        "pil_images_per_s": round(pil, 1),
        "pil_tensor_ops_images_per_s": round(tensor_ops, 1),
        "decode_1core_images_per_s": round(decode_1, 1),
        "decode_limit_images_per_s": round(limit, 1),
        "ffcv_over_pil": round(ffcv / pil, 2),
        "ffcv_over_pil_tensor_ops": round(ffcv / tensor_ops, 2),
        "ffcv_over_decode_limit": round(ffcv / limit, 2),
    }

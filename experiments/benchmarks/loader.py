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


def _write_beton(path: str, files: list[str], size: int) -> dict:
    from datamodules.ffcv_store import write_hashtag_beton

    return write_hashtag_beton(
        path, _Corpus(files), max_labels=4, max_resolution=size, jpeg_quality=90, write_mode="jpg"
    )


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
        counts = np.zeros(VOCAB, np.int64)
        for i in range(count):
            counts[_labels(i)] += 1
        manifest = {
            "train": [{"file": "train.beton", "count": count}],
            "val": {"file": "train.beton", "count": count},
            "num_train": count,
            "max_labels": 4,
            "vocab_size": VOCAB,
            "hashtag_counts": counts.tolist(),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, files


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


def _ffcv_rate(folder: Path, args) -> float:
    from datamodules.pretrain import HashtagDataModule
    from experiments.config import DataConfig

    cfg = DataConfig(
        batch_size=args.batch,
        num_workers=args.workers,
        resolution=args.resolution,
        sampling="natural",
    )
    dm = HashtagDataModule(cfg, seed=0, prepared_dir=folder)
    batches = dm.train_dataloader()
    return _rate(batches, args.epochs)


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

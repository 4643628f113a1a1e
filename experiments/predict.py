"""`python -m experiments predict --checkpoint CKPT IMAGE... [--top-k 5]`: hashtags for images.

Loads a pretraining checkpoint (or run dir), resizes each image (shorter side to the training
resolution, centre crop), and prints the top-k hashtags with their probabilities (softmax for
the multi-label softmax, per-hashtag sigmoid for the sigmoid ablation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datamodules.errors import UserInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a pretraining .ckpt or run dir")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--top-k", type=int, default=5, help="hashtags to print per image")


def _load_image(path: Path, size: int):
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserInputError(f"image not found: {path}")
    try:
        img = Image.open(path).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UserInputError(f"{path}: not a readable image ({exc})") from None
    scale = size / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def predict(checkpoint: str, images: list[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (hashtag, probability) per image."""
    import torch

    from lightning_modules.backbones import normalize_images
    from lightning_modules.checkpoints import load_pretrained

    if top_k < 1:
        raise UserInputError("--top-k must be >= 1")
    net, info = load_pretrained(checkpoint)
    if info["init"] != "hashtag":
        raise UserInputError(f"{checkpoint}: predict needs a hashtag pretraining checkpoint")
    names = info["hashtags"] or [f"#{i}" for i in range(info["num_classes"])]
    batch = torch.stack([_load_image(Path(p), info["resolution"]) for p in images])
    net.eval()
    with torch.inference_mode():
        logits = net(normalize_images(batch))
    probs = logits.sigmoid() if info["loss"] == "sigmoid" else logits.softmax(dim=1)
    values, ids = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [
        [(names[i], float(v)) for v, i in zip(vs.tolist(), row.tolist())]
        for vs, row in zip(values, ids)
    ]


def run(args: argparse.Namespace) -> int:
    results = predict(args.checkpoint, args.images, args.top_k)
    for path, tags in zip(args.images, results):
        print(path)
        for tag, prob in tags:
            print(f"  #{tag.lstrip('#'):<30s} {prob:.4f}")
    return 0

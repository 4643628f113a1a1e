"""OpenClipart (Debian ``openclipart-svg``): 8,121 SVGs in 22 folders, with keyword tags.

Each SVG carries Dublin Core metadata written by its author: ``<dc:title>`` and
``<dc:subject><rdf:Bag><rdf:li>keyword</rdf:li>...`` (the tags). The top-level folder
(``animals``, ``food``, ...) is the category.

Rasterization (CairoSVG, on a white background, longer side = ``size``, centered on a square
canvas) runs once per size, in parallel on all cores, and is cached under
``<cache_dir>/openclipart/<size>px/``: one PNG per SVG (written atomically, so a killed run
leaves whole files only and a rerun resumes), then ``index.json`` (records and failures), written
last, marks the cache complete, and ``report.json`` (counts, timings). SVGs that fail to render
or exceed a per-file time limit are skipped and counted.

The held-out split for transfer is a pure function of the source id (:func:`is_heldout`), so
pretraining (``heldout=False``) excludes exactly the images the ``openclipart`` target uses.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from datamodules.errors import UserInputError
from datamodules.io import atomic_write_bytes, atomic_write_json
from datamodules.sources.base import TaggedImage

DEFAULT_SVG_ROOT = "/usr/share/openclipart/svg"
SVG_ROOT_ENV = "OPENCLIPART_SVG_DIR"
CACHE_VERSION = 1
RENDER_TIMEOUT_S = 20.0
ID_PREFIX = "openclipart:"
# Target categories: folders that are not topical, and folders too small to split, are dropped.
EXCLUDED_TARGET_CATEGORIES = ("unsorted", "special")
MIN_HELDOUT_PER_CATEGORY = 12

_SUBJECT = re.compile(r"<dc:subject>(.*?)</dc:subject>", re.S)
_ITEM = re.compile(r"<rdf:li>(.*?)</rdf:li>", re.S)
_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)


def svg_root(path: str | os.PathLike | None = None) -> Path:
    """The SVG folder: the argument, else ``$OPENCLIPART_SVG_DIR``, else Debian's path."""
    return Path(path or os.environ.get(SVG_ROOT_ENV) or DEFAULT_SVG_ROOT)


def is_heldout(source_id: str, fraction: float) -> bool:
    """Whether ``source_id`` belongs to the held-out (transfer) split: a stable hash test.

    sha1 of the id, read as a number in [0, 1), below ``fraction``: the same images are held out
    in every run, process and machine, and a larger fraction holds out a superset.
    """
    digest = hashlib.sha1(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def parse_svg_metadata(text: str) -> tuple[str, tuple[str, ...]]:
    """``(title, keywords)`` from an SVG's Dublin Core metadata.

    Keywords are the ``<rdf:li>`` items of the first ``<dc:subject>`` (XML entities decoded,
    whitespace trimmed, empties dropped, each once in order); multi-word items stay as written.
    """
    title_m = _TITLE.search(text)
    title = html.unescape(title_m.group(1)).strip() if title_m else ""
    subject = _SUBJECT.search(text)
    tags: dict[str, None] = {}
    if subject:
        for item in _ITEM.findall(subject.group(1)):
            item = " ".join(html.unescape(item).split())
            if item:
                tags[item] = None
    return title, tuple(tags)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout


def rasterize_svg(svg_path: str | os.PathLike, size: int) -> np.ndarray:
    """Render an SVG to RGB uint8 ``size`` x ``size``: longer side = ``size``, centered, white
    background (transparent areas composited onto white)."""
    import cairosvg  # imported here: only the rasterizing processes need cairo

    def render(**fit) -> Image.Image:
        buf = io.BytesIO()
        surface = cairosvg.surface.PNGSurface(tree, buf, 96, **fit)
        surface.finish()
        return Image.open(io.BytesIO(buf.getvalue()))

    tree = cairosvg.parser.Tree(url=str(svg_path))
    img = render(output_width=size)
    if img.height > size:  # taller than wide: fit the height instead
        img = render(output_height=size)
    img = img.convert("RGBA")
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    canvas.alpha_composite(img, ((size - img.width) // 2, (size - img.height) // 2))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def _render_task(task: tuple[str, str, str, int, float]) -> dict:
    """Worker: parse metadata, rasterize (unless the PNG exists), write the PNG atomically."""
    rel, svg_path, png_path, size, timeout_s = task
    out = {"rel": rel, "ok": False, "reason": "", "title": "", "tags": []}
    try:
        with open(svg_path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        out["title"], tags = parse_svg_metadata(text)
        out["tags"] = list(tags)
    except OSError as exc:
        out["reason"] = f"unreadable: {exc}"
        return out
    if os.path.exists(png_path):
        out["ok"] = True
        return out
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        rgb = rasterize_svg(svg_path, size)
        signal.setitimer(signal.ITIMER_REAL, 0)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        atomic_write_bytes(png_path, buf.getvalue())
        out["ok"] = True
    except _Timeout:
        out["reason"] = f"timeout (> {timeout_s:g} s)"
    except Exception as exc:  # any parse/render error: skip this SVG, count it
        out["reason"] = (
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return out


def cache_path(cache_dir: str | os.PathLike, size: int) -> Path:
    return Path(cache_dir) / "openclipart" / f"{size}px"


def _list_svgs(root: Path) -> list[str]:
    if not root.is_dir():
        raise UserInputError(
            f"OpenClipart SVG folder {root} not found: install the Debian package "
            f"openclipart-svg, or set ${SVG_ROOT_ENV} to a folder of <category>/.../*.svg files"
        )
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.svg"))
    if not rels:
        raise UserInputError(f"OpenClipart SVG folder {root} holds no .svg files")
    return rels


def build_cache(
    cache_dir: str | os.PathLike,
    size: int = 64,
    *,
    root: str | os.PathLike | None = None,
    workers: int | None = None,
    timeout_s: float = RENDER_TIMEOUT_S,
    progress: bool = True,
) -> dict:
    """Rasterize every SVG under ``root`` at ``size`` px into the cache (once); return the index.

    Reuses a complete cache (``index.json`` present, same root, size and version); resumes an
    interrupted one (existing PNGs are kept). Writes ``report.json`` with counts and wall time.
    """
    if size < 8:
        raise UserInputError(f"data.image_size={size} is too small for rasterizing (use >= 8)")
    src = svg_root(root).resolve()
    out_dir = cache_path(cache_dir, size)
    out_dir.mkdir(parents=True, exist_ok=True)
    # one builder at a time: parallel prepare shards wait here, then reuse the finished cache
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(src, out_dir, size, workers, timeout_s, progress)


def _build_locked(
    src: Path, out_dir: Path, size: int, workers: int | None, timeout_s: float, progress: bool
) -> dict:
    index_file = out_dir / "index.json"
    if index_file.is_file():
        index = _read_json(index_file)
        if index.get("version") == CACHE_VERSION and index.get("svg_root") == str(src):
            return index
        # built from other SVGs or by another version: its PNGs must not be reused
        shutil.rmtree(out_dir / "png", ignore_errors=True)
        index_file.unlink()
    rels = _list_svgs(src)
    tasks = [
        (rel, str(src / rel), str(out_dir / "png" / (rel[:-4] + ".png")), size, timeout_s)
        for rel in rels
    ]
    workers = workers or len(os.sched_getaffinity(0))
    start = time.perf_counter()
    results: list[dict] = []
    # spawn, not fork: the caller may hold threads (loaders, BLAS) that a fork would copy locked
    with mp.get_context("spawn").Pool(workers) as pool:
        it = pool.imap_unordered(_render_task, tasks, chunksize=8)
        for res in tqdm(
            it, total=len(tasks), desc=f"rasterize OpenClipart {size}px", disable=not progress
        ):
            results.append(res)
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r["rel"])
    records = [
        {
            "id": r["rel"][:-4],
            "category": r["rel"].split("/", 1)[0],
            "title": r["title"],
            "tags": r["tags"],
            "png": "png/" + r["rel"][:-4] + ".png",
        }
        for r in results
        if r["ok"]
    ]
    failed = [{"id": r["rel"][:-4], "reason": r["reason"]} for r in results if not r["ok"]]
    reasons = Counter(f["reason"].split(":")[0].split(" (")[0] for f in failed)
    report = {
        "svg_root": str(src),
        "size": size,
        "total": len(rels),
        "rendered": len(records),
        "failed": len(failed),
        "failed_by_reason": dict(sorted(reasons.items())),
        "timeout_s": timeout_s,
        "workers": workers,
        "wall_s": round(wall, 2),
        "without_tags": sum(1 for r in records if not r["tags"]),
    }
    index = {
        "version": CACHE_VERSION,
        "svg_root": str(src),
        "size": size,
        "records": records,
        "failed": failed,
    }
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_json(index_file, index)  # last: its presence marks the cache complete
    return index


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class OpenClipartRecords(Sequence):
    """OpenClipart records from a built cache, filtered by split and shard (indexable, sized)."""

    records: tuple[TaggedImage, ...]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return OpenClipartRecords(self.records[i])
        return self.records[i]


def shard_of(source_id: str, num_shards: int) -> int:
    """Stable shard of a source id (sha1-based, independent of the held-out hash bits)."""
    digest = hashlib.sha1(("shard:" + source_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def load_records(
    cache_dir: str | os.PathLike,
    size: int = 64,
    *,
    heldout: bool | None = False,
    holdout_fraction: float = 0.2,
    shard: int = 0,
    num_shards: int = 1,
    root: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenClipartRecords:
    """OpenClipart records (building the cache if needed).

    ``heldout=False``: the pretraining pool (held-out images excluded); ``True``: only the held-out
    images; ``None``: all. Shards split by a stable hash of the source id: disjoint, covering.
    """
    if not 0 <= holdout_fraction < 1:
        raise UserInputError(
            f"data.holdout_fraction={holdout_fraction} must be in [0, 1) (share held out for transfer)"
        )
    if not 0 <= shard < num_shards:
        raise UserInputError(f"shard {shard} is out of range for num_shards={num_shards}")
    index = build_cache(cache_dir, size, root=root, progress=progress)
    base = cache_path(cache_dir, size)
    out = []
    for r in index["records"]:
        sid = ID_PREFIX + r["id"]
        if heldout is not None and is_heldout(sid, holdout_fraction) != heldout:
            continue
        if num_shards > 1 and shard_of(sid, num_shards) != shard:
            continue
        out.append(TaggedImage(sid, tuple(r["tags"]), r["category"], str(base / r["png"])))
    return OpenClipartRecords(tuple(out))


def target_categories(
    records: Sequence[TaggedImage], min_per_category: int = MIN_HELDOUT_PER_CATEGORY
) -> list[str]:
    """Categories of the ``openclipart`` transfer target, from the held-out records: every folder
    with at least ``min_per_category`` held-out images, except ``unsorted`` and ``special``
    (not topical), sorted by name."""
    counts = Counter(r.category for r in records)
    return sorted(
        c
        for c, n in counts.items()
        if c not in EXCLUDED_TARGET_CATEGORIES and n >= min_per_category
    )

"""`python -m experiments bench vocab [--records N]`: labelling speed of a hashtag vocabulary.

Generates tag records like a hashtag corpus: real WordNet noun lemmas with Zipfian frequencies
(rank^-s), each written in one of three spellings (``brown_bear``, ``Brown Bear``,
``#brownbear``), plus noise tags (the default stop list and a long tail of non-words), 1 + a
Poisson(2) number of tags per record (3 on average). A ``data.vocab.name`` vocabulary is built from
the first chunk's counts, then :func:`datamodules.hashtags.label_all` labels every record on one
core; only labelling is timed (generation is not), in wall-clock and CPU seconds (the CPU
figure is the one-core cost on a shared machine). Target: 10M records in <= 60 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from datamodules.data_config import VOCABS
from datamodules.hashtags import build_vocabulary, count_tags, label_all, normalize
from datamodules.wordnet import load_wordnet
from experiments.config import DataConfig

_CHUNK = 500_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=10_000_000, help="tag records to label")
    parser.add_argument("--vocab", choices=VOCABS, default="wordnet")
    parser.add_argument("--lemmas", type=int, default=30_000, help="distinct WordNet lemmas used")
    parser.add_argument("--zipf", type=float, default=1.0, help="frequency ~ rank^-s")
    parser.add_argument("--noise", type=float, default=0.15, help="share of tags that are noise")
    parser.add_argument("--seed", type=int, default=0)


def _tag_pool(args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Raw spellings of WordNet lemmas (index = Zipf rank x 3 spellings) and noise tags."""
    lemmas = sorted(load_wordnet().senses)
    picked = [lemmas[i] for i in rng.permutation(len(lemmas))[: args.lemmas]]
    spellings = []
    for lemma in picked:
        spellings += [lemma, lemma.replace("_", " ").title(), "#" + normalize(lemma)]
    noise = list(DataConfig().vocab.stop_tags) + [f"zq{i:05d}x" for i in range(50_000)]
    return spellings, noise


def _records(n: int, spellings, noise, args, rng) -> list[list[str]]:
    sizes = 1 + rng.poisson(2.0, size=n)
    total = int(sizes.sum())
    ranks = np.arange(1, len(spellings) // 3 + 1, dtype=np.float64)
    p = ranks**-args.zipf
    lemma_idx = rng.choice(len(ranks), size=total, p=p / p.sum())
    idx = lemma_idx * 3 + rng.integers(0, 3, size=total)
    is_noise = rng.random(total) < args.noise
    noise_idx = np.minimum(rng.zipf(1.5, size=total) - 1, len(noise) - 1)
    flat = [
        noise[j] if z else spellings[i]
        for i, j, z in zip(idx.tolist(), noise_idx.tolist(), is_noise.tolist())
    ]
    ends = np.cumsum(sizes).tolist()
    starts = [0, *ends[:-1]]
    return [flat[a:b] for a, b in zip(starts, ends)]


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    spellings, noise = _tag_pool(args, rng)
    cfg = DataConfig().vocab
    first = _records(min(_CHUNK, args.records), spellings, noise, args, rng)
    c0 = time.process_time()
    counts = count_tags(first)
    count_cpu = time.process_time() - c0
    vocab, report = build_vocabulary(
        counts,
        len(first),
        vocab=args.vocab,
        min_count=cfg.min_count,
        ambiguity=cfg.ambiguity,
        stop_tags=cfg.stop_tags,
        max_tag_share=cfg.max_tag_share,
    )
    label_s, label_cpu, done, tags, unlabelled = 0.0, 0.0, 0, 0, 0
    with tqdm(total=args.records, desc="labelling", unit="rec", unit_scale=True) as bar:
        chunk = first
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            _, missing = label_all(vocab, chunk)
            label_s += time.perf_counter() - t0
            label_cpu += time.process_time() - c0
            done += len(chunk)
            tags += sum(map(len, chunk))
            unlabelled += missing
            bar.update(len(chunk))
            if done >= args.records:
                break
            chunk = _records(min(_CHUNK, args.records - done), spellings, noise, args, rng)
    return {
        "records": done,
        "tags": tags,
        "mean_tags_per_record": round(tags / done, 4),
        "vocab": args.vocab,
        "vocab_size": len(vocab),
        "unlabelled_share": round(unlabelled / done, 4),
        "label_wall_seconds": round(label_s, 3),
        "label_cpu_seconds": round(label_cpu, 3),
        "records_per_s": round(done / label_s),
        "records_per_cpu_s": round(done / label_cpu),
        "tags_per_s": round(tags / label_s),
        "cpu_seconds_per_10M_records": round(label_cpu / done * 1e7, 2),
        "count_tags_records_per_cpu_s": round(len(first) / count_cpu),
        "zipf_exponent_fitted": (report["zipf"] or {}).get("exponent"),
        "seed": args.seed,
    }

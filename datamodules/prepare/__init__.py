"""The prepare chain: tagged source records -> FFCV .beton shards with a manifest.

``ensure_prepared(data_cfg, seed)`` runs (or reuses) four cached stages::

    scan   open_source -> decode every image (corrupt ones skipped, counted, listed) -> per-image
           dedup signatures + per-shard tag counts, merged        key: data.source
    vocab  merged counts -> build_vocabulary -> labels per image  key: scan + data.vocab
    dedup  signatures vs every evaluation image of the targets   key: scan + data.dedup + seed
    write  labelled, non-duplicate images -> nested scale subset -> train/val split -> .beton
           shards + manifest.json, ids.txt, vocab.tsv, vocab_report.json, dedup_report.json
                                                                  key: vocab + dedup + data.write + seed

Each stage's folder is named by a hash of its own section of the data config and the keys of its
inputs (``data.loading`` is in no key), so changing ``data.write.scale`` re-runs only the write
stage, and changing ``data.vocab.name`` reuses the decoded source. Every folder is built under a
temporary name and renamed when complete: a folder with its final name is complete. The scan
stage can be split into shards (``open_source(cfg, shard=i, num_shards=N)``) run by a process
pool on one machine or as a submitit job array (``launcher="local"``, the default, is the
process pool, ``"submitit-local"`` submitit's LocalExecutor, ``"slurm"`` a SLURM array: the
names of ``datamodules.launch.LAUNCHERS``, meaning what they mean for the sweep); per-shard tag
counts are merged, so the corpus never has to fit one process. The write stage writes its .beton
files (``data.write.shard_size`` > 0 makes several train shards) in parallel through the same
launcher, each file in a process of its own, resumably (``datamodules.shards``): the manifest
lists every shard with its count and checksum.

Layout under ``<data.cache_dir>/prepared/``: ``stages/{scan,vocab,dedup}-<key>/`` and the
prepared folders ``<source>-<key>/`` (see docs/CONTRACTS.md for manifest.json).

One concern a file: ``cache`` (stage keys, atomic folders), ``scan``, ``labels``,
``dedup_stage`` and ``write`` (the four stages; which evaluation sets dedup compares against is
``datamodules.dedup_targets``), ``manifest`` (manifest.json, versions, the summary) and ``chain``
(the plan and ``ensure_prepared``). This package face re-exports the public names.
"""

from datamodules import sources as sources  # tests patch ``prepare.sources.open_source``
from datamodules.launch import LAUNCHERS
from datamodules.prepare.cache import stage_key
from datamodules.prepare.chain import _plan as _plan
from datamodules.prepare.chain import ensure_prepared, prepared_dir
from datamodules.prepare.labels import _build_vocab as _build_vocab
from datamodules.prepare.manifest import data_versions, format_summary
from datamodules.prepare.scan import build_scan_stage, scan_shard
from datamodules.prepare.write import SourceItems

__all__ = [
    "LAUNCHERS",
    "SourceItems",
    "build_scan_stage",
    "data_versions",
    "ensure_prepared",
    "format_summary",
    "prepared_dir",
    "scan_shard",
    "stage_key",
]

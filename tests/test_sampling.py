"""Resampling reaches its target hashtag distribution, deterministic in (seed, epoch) and small
in memory; label noise has its rate and marginal, never re-draws an image's own labels, and is a
pure function of (seed, sample_id, slot)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from scipy import stats

from datamodules.epoch_order import EpochSampler, draw_indices, shard_for_rank
from datamodules.errors import UserInputError
from datamodules.label_noise import apply_label_noise, hash_uniform, noisy_label_chunks
from datamodules.sampling import hashtag_weights, image_weights, label_counts, target_shares

V = 50


def _zipf_corpus(n: int, width: int, max_per_image: int, seed: int = 0) -> np.ndarray:
    """Padded label rows: 1..max_per_image distinct Zipf(1) hashtags per image."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, V + 1)
    p /= p.sum()
    rows = np.full((n, width), -1, dtype=np.int32)
    for i in range(n):
        k = rng.integers(1, max_per_image + 1)
        rows[i, :k] = np.sort(rng.choice(V, size=k, replace=False, p=p))
    return rows


def _drawn_hashtag_shares(rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    counts = label_counts([rows[order]], V).astype(np.float64)
    return counts / counts.sum()


@pytest.mark.parametrize("mode", ["natural", "sqrt", "uniform"])
@pytest.mark.parametrize("combine", ["mean", "max", "sum"])
def test_single_label_resampling_matches_target_chi_square(mode, combine):
    rows = _zipf_corpus(20_000, 4, max_per_image=1)
    counts = label_counts([rows], V)
    sampler = EpochSampler(
        image_weights([rows], counts, mode, combine, len(rows)), len(rows), seed=3
    )
    target = target_shares(counts, mode)
    for epoch in (0, 1):
        observed = label_counts([rows[sampler.indices(epoch)]], V)
        present = target > 0
        chi2, pvalue = stats.chisquare(observed[present], target[present] * observed.sum())
        assert pvalue > 1e-3, (mode, combine, epoch, chi2)
    if mode == "natural":  # a permutation: every image exactly once
        assert np.array_equal(np.sort(sampler.indices(0)), np.arange(len(rows)))


@pytest.mark.parametrize("mode", ["sqrt", "uniform"])
def test_multi_label_combines_move_toward_target_with_their_stated_bounds(mode):
    rows = _zipf_corpus(20_000, 4, max_per_image=3)
    counts = label_counts([rows], V)
    target = target_shares(counts, mode)
    natural_tv = 0.5 * np.abs(counts / counts.sum() - target).sum()
    assert natural_tv > 0.2
    for combine in ("mean", "max", "sum"):
        weights = image_weights([rows], counts, mode, combine, len(rows))
        order = EpochSampler(weights, len(rows), 0).indices(0)
        tv = 0.5 * np.abs(_drawn_hashtag_shares(rows, order) - target).sum()
        assert tv < 0.7 * natural_tv, (combine, tv, natural_tv)
        if combine in ("max", "sum"):  # share of draws carrying h >= t(h) (3 sigma slack)
            carrying = label_counts([rows[order]], V) / len(order)
            assert (carrying >= 0.85 * target).all(), combine


def test_draws_are_deterministic_in_seed_and_epoch_and_int32():
    rows = _zipf_corpus(5_000, 4, max_per_image=2)
    counts = label_counts([rows], V)
    weights = image_weights([rows], counts, "sqrt", "mean", len(rows))
    a, b = EpochSampler(weights, len(rows), 7), EpochSampler(weights, len(rows), 7)
    assert a.indices(2).dtype == np.int32 and len(a.indices(2)) == len(rows)
    assert np.array_equal(a.indices(2), b.indices(2))
    assert not np.array_equal(a.indices(2), a.indices(3))
    assert not np.array_equal(a.indices(2), EpochSampler(weights, len(rows), 8).indices(2))


def test_blockwise_draw_matches_weights_exactly_across_blocks():
    rng = np.random.default_rng(0)
    weights = rng.random(1000).astype(np.float32)
    weights[::7] = 0.0  # never drawn
    draws = draw_indices(weights, 400_000, np.random.default_rng(1), block=64)
    hist = np.bincount(draws, minlength=1000)
    assert hist[::7].sum() == 0
    expected = weights.astype(np.float64) / weights.sum(dtype=np.float64) * len(draws)
    keep = weights > 0
    assert stats.chisquare(hist[keep], expected[keep]).pvalue > 1e-3
    # draws come shuffled, not grouped by block
    assert np.mean(np.diff(draws) > 0) < 0.6


def test_every_chunk_of_the_output_is_an_unbiased_draw_whatever_the_thread_count():
    rng = np.random.default_rng(0)
    weights = rng.random(1000).astype(np.float32)
    draw = dict(num_draws=300_000, block=64, chunk=1000)
    draws = draw_indices(weights, rng=np.random.default_rng(2), threads=2, **draw)
    assert np.array_equal(
        draws, draw_indices(weights, rng=np.random.default_rng(2), threads=1, **draw)
    )
    expected = weights.astype(np.float64) / weights.sum(dtype=np.float64)
    # the first 30 chunks alone (a split of sorted block draws that is not uniformly random
    # would give early chunks the low indices of each block), and the first positions of
    # every chunk (a missing in-chunk shuffle would order them by block)
    positions = np.arange(len(draws))
    for part in (draws[:30_000], draws[positions % 1000 < 30]):
        hist = np.bincount(part, minlength=1000)
        assert stats.chisquare(hist, expected * len(part)).pvalue > 1e-3
        assert abs(np.mean(part % 64) - np.sum(expected * (np.arange(1000) % 64))) < 0.5


def test_memory_is_8_bytes_per_image_plus_temporaries_that_do_not_grow_with_n():
    n, step = 4_000_000, 100_000
    labels = np.full((n, 2), -1, np.int32)
    labels[:, 0] = np.arange(n) % V
    counts = label_counts((labels[i : i + step] for i in range(0, n, step)), V)
    chunks = (labels[i : i + step] for i in range(0, n, step))
    tracemalloc.start()
    try:
        weights = image_weights(chunks, counts, "sqrt", "max", n)
        weights_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sampler = EpochSampler(weights, n, 0)
        order = sampler.indices(0)
        draw_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sampler.weights.nbytes + order.nbytes == sampler.nbytes == 8 * n
    # what each step allocates besides what it keeps: a few blocks and chunks per thread,
    # 12 MB here, where one more copy of the weights or the index would add 16-32 MB
    assert weights_peak - weights.nbytes < 12e6
    assert draw_peak - weights.nbytes - order.nbytes < 12e6


def test_ranks_get_disjoint_equal_shares():
    order = np.random.default_rng(0).permutation(103).astype(np.int32)
    parts = [shard_for_rank(order, r, 4) for r in range(4)]
    assert {len(p) for p in parts} == {25}
    positions = np.concatenate([np.arange(r, 100, 4) for r in range(4)])
    assert np.array_equal(np.sort(np.concatenate(parts)), np.sort(order[positions]))


def _noise_marginal(counts: np.ndarray, dist: str) -> np.ndarray:
    q = counts / counts.sum() if dist == "natural" else np.ones(len(counts))
    return q / q.sum()


@pytest.mark.parametrize("dist", ["natural", "uniform"])
def test_label_noise_rate_is_p_and_replacements_are_new_to_the_image(dist):
    rows = torch.from_numpy(_zipf_corpus(20_000, 4, max_per_image=3, seed=1))
    counts = label_counts([rows.numpy()], V)
    ids = torch.arange(50_000, 70_000)
    p = 0.25
    noisy = apply_label_noise(rows, ids, p, dist, counts, seed=11)
    assert noisy.dtype == torch.int32 and noisy.shape == rows.shape
    present = rows >= 0
    assert torch.equal(noisy[~present], rows[~present])  # padding untouched
    # every replacement changes the label, so the changed share is p itself (binomial bound)
    n = int(present.sum())
    changed = (noisy != rows)[present].float().mean().item()
    assert abs(changed - p) < 4 * np.sqrt(p * (1 - p) / n)
    # a replacement is never one of the image's clean labels, and no row holds an id twice
    replaced = (noisy != rows) & present
    r, j = torch.nonzero(replaced, as_tuple=True)
    assert not (rows[r] == noisy[r, j][:, None]).any()
    sorted_rows = torch.sort(noisy, dim=1).values
    assert not ((sorted_rows[:, 1:] == sorted_rows[:, :-1]) & (sorted_rows[:, 1:] >= 0)).any()
    # the same corrupted corpus whatever the batch composition; another seed corrupts another
    again = apply_label_noise(rows.flip(0)[:7_000], ids.flip(0)[:7_000], p, dist, counts, 11)
    assert torch.equal(again.flip(0), noisy[-7_000:])
    assert not torch.equal(apply_label_noise(rows, ids, p, dist, counts, seed=12), noisy)
    assert apply_label_noise(rows, ids, 0.0, dist, counts, seed=11) is rows


@pytest.mark.parametrize("dist", ["natural", "uniform"])
def test_label_noise_replacements_follow_the_marginal_minus_the_image_labels(dist):
    """Chi-square of the replacement ids against their exact expectation: for each replaced
    slot, q(h) / (1 - q(E)) over the ids h outside the slot's excluded set E (the image's clean
    labels and its earlier slots' labels as corrupted)."""
    rows = _zipf_corpus(30_000, 4, max_per_image=3, seed=2)
    counts = label_counts([rows], V)
    q = _noise_marginal(counts, dist)
    noisy = apply_label_noise(rows, np.arange(30_000), 0.3, dist, counts, seed=3)
    expected = np.zeros(V)
    observed = np.zeros(V)
    for j in range(rows.shape[1]):
        hit = np.flatnonzero((noisy[:, j] != rows[:, j]) & (rows[:, j] >= 0))
        excluded = np.zeros((len(hit), V), bool)
        for col in np.concatenate([rows[hit], noisy[hit, :j]], axis=1).T:
            excluded[np.flatnonzero(col >= 0), col[col >= 0]] = True
        allowed = np.where(excluded, 0.0, q[None, :])
        expected += (allowed / allowed.sum(axis=1, keepdims=True)).sum(axis=0)
        observed += np.bincount(noisy[hit, j], minlength=V)
    assert observed.sum() > 5_000
    assert not observed[expected == 0].any()
    keep = expected > 5
    assert (
        stats.chisquare(
            observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()
        ).pvalue
        > 1e-4
    )


def test_label_noise_exact_draw_on_a_tiny_vocabulary():
    """Three ids with weights 1, 2, 3 and id 1 excluded: id 0 w.p. 1/4, id 2 w.p. 3/4; an image
    carrying every id with weight keeps its label."""
    counts = np.array([1, 2, 3, 0])
    n = 40_000
    rows = np.full((n, 2), -1, np.int32)
    rows[:, 0] = 1
    noisy = apply_label_noise(rows, np.arange(n), 1.0, "natural", counts, seed=0)
    assert set(np.unique(noisy[:, 0])) == {0, 2} and (noisy[:, 1] == -1).all()
    share0 = (noisy[:, 0] == 0).mean()
    assert abs(share0 - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)
    full = np.array([[0, 1, 2]], np.int32)
    assert np.array_equal(apply_label_noise(full, [0], 1.0, "natural", counts, 0), full)
    # uniform: the other three ids equally, the one no training image carries included
    uniform = apply_label_noise(rows, np.arange(n), 1.0, "uniform", counts, seed=0)[:, 0]
    shares = np.bincount(uniform, minlength=4) / n
    assert shares[1] == 0 and np.abs(shares[[0, 2, 3]] - 1 / 3).max() < 4 * np.sqrt(2 / 9 / n)
    # both slots of an image carrying {1, 2} replaced: the other two ids, one each
    both = apply_label_noise(
        np.array([[1, 2]] * 50, np.int32), np.arange(50), 1.0, "uniform", counts, 0
    )
    assert (np.sort(both, axis=1) == [0, 3]).all()


def test_noisy_label_chunks_number_rows_from_first_id():
    rows = _zipf_corpus(3_000, 4, max_per_image=3, seed=4)
    counts = label_counts([rows], V)
    chunks = list(
        noisy_label_chunks([rows[:1_000], rows[1_000:]], 0.4, "natural", counts, 9, first_id=100)
    )
    whole = apply_label_noise(rows, np.arange(100, 3_100), 0.4, "natural", counts, 9)
    assert np.array_equal(np.concatenate(chunks), whole)


def test_hash_uniform_is_uniform():
    u = hash_uniform(0, np.arange(100_000).reshape(-1, 1), np.arange(2).reshape(1, -1), 0)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u.reshape(-1), "uniform").pvalue > 1e-3


def test_bad_options_are_user_errors():
    counts = np.array([3, 1, 0])
    with pytest.raises(UserInputError, match="data.loading.sampling="):
        target_shares(counts, "log")
    with pytest.raises(UserInputError, match="sampling_combine"):
        image_weights([np.zeros((2, 1), np.int32)], counts, "sqrt", "median", 2)
    with pytest.raises(UserInputError, match="label_noise"):
        apply_label_noise(np.zeros((1, 1), np.int32), np.zeros(1), 1.5, "natural", counts, 0)
    with pytest.raises(UserInputError, match="label_noise_dist"):
        apply_label_noise(np.zeros((1, 1), np.int32), np.zeros(1), 0.1, "zipf", counts, 0)


def test_weights_reject_labels_outside_the_vocabulary():
    counts = np.array([3, 1, 2])
    for bad in (np.array([[0, 3]], np.int32), np.array([[0, -2]], np.int32)):
        with pytest.raises(ValueError, match="do not belong to this .beton"):
            image_weights([bad], counts, "sqrt", "mean", 1)


def test_weights_and_counts_stream_chunks_in_order_on_threads():
    rows = _zipf_corpus(30_000, 4, max_per_image=3, seed=2)
    counts = label_counts([rows], V)
    chunked = [rows[i : i + 1000] for i in range(0, len(rows), 1000)]
    assert np.array_equal(label_counts(iter(chunked), V), counts)
    whole = image_weights([rows], counts, "uniform", "mean", len(rows))
    assert np.array_equal(image_weights(iter(chunked), counts, "uniform", "mean", len(rows)), whole)
    # mean of the present hashtags' weights, row by row
    table = np.append(hashtag_weights(counts, "uniform"), 0.0).astype(np.float32)
    expected = table[rows].sum(axis=1) / (rows >= 0).sum(axis=1)
    np.testing.assert_allclose(whole, expected, rtol=1e-6)

"""Hamming search (brute force and multi-index hashing) against a naive reference, and clustering."""
from __future__ import annotations

import numpy as np
import pytest

from fashion_pipeline.dedup import search
from fashion_pipeline.dedup.cluster import UnionFind, cluster_labels


def naive_pairs(hashes: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    """Test-only reference: the obvious double loop over Python ints."""
    values = [int(h) for h in hashes]
    found = set()
    for a in range(len(values)):
        for b in range(a + 1, len(values)):
            distance = bin(values[a] ^ values[b]).count("1")
            if distance <= threshold:
                found.add((a, b, distance))
    return found


def as_set(pairs: search.Pairs) -> set[tuple[int, int, int]]:
    return set(zip(pairs.i.tolist(), pairs.j.tolist(), pairs.distance.tolist()))


def planted_hashes(n: int, seed: int) -> np.ndarray:
    """Random hashes where a third are copies of others with 0..12 bits flipped (and a few exact repeats)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    for target in rng.choice(n, size=n // 3, replace=False):
        source = rng.integers(n)
        flips = rng.choice(64, size=rng.integers(0, 13), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(b) for b in flips))
    hashes[1] = hashes[2] = hashes[3]
    return hashes


@pytest.mark.parametrize("threshold", [0, 4, 8, 10])
def test_brute_force_matches_naive(threshold):
    hashes = planted_hashes(400, seed=threshold)
    found = search.brute_force_pairs(hashes, threshold)
    assert as_set(found) == naive_pairs(hashes, threshold)
    assert len(found) > 0
    assert np.all(found.i < found.j)


@pytest.mark.parametrize("threshold,n_chunks", [(0, 3), (6, 3), (8, 4), (10, 5), (10, 11)])
def test_multi_index_matches_brute_force(threshold, n_chunks):
    hashes = planted_hashes(2000, seed=7)
    expected = search.brute_force_pairs(hashes, threshold)
    found = search.multi_index_pairs(hashes, threshold, n_chunks=n_chunks)
    assert as_set(found) == as_set(expected)


def test_multi_index_across_forked_processes_matches_brute_force():
    hashes = planted_hashes(3000, seed=11)
    expected = search.brute_force_pairs(hashes, 10)
    found = search.multi_index_pairs(hashes, 10, n_chunks=3, processes=2)
    assert len(expected) > 0
    assert as_set(found) == as_set(expected)
    np.testing.assert_array_equal(found.distance, expected.distance)


def test_small_blocks_do_not_lose_pairs(monkeypatch):
    monkeypatch.setattr(search, "BLOCK_ELEMENTS", 7)  # forces many one-row blocks
    hashes = planted_hashes(150, seed=3)
    assert as_set(search.brute_force_pairs(hashes, 8)) == naive_pairs(hashes, 8)


def test_find_pairs_with_mirrors_matches_either_orientation():
    hashes = np.array([0x0, 0xFFFF_FFFF_FFFF_FFFF, 0xF0F0], dtype=np.uint64)
    mirrors = np.array([0xAAAA_AAAA_AAAA_AAAA, 0x0000_0000_0000_0003, 0x0F0F], dtype=np.uint64)
    assert len(search.find_pairs(hashes, 4)) == 0
    with_mirrors = search.find_pairs(hashes, 4, mirrors=mirrors)
    # image 0 matches image 1's mirror (2 bits); image 2 vs 0 is 8 bits either way
    assert as_set(with_mirrors) == {(0, 1, 2)}


def test_find_pairs_accepts_signed_views_and_rejects_bad_threshold():
    unsigned = np.array([2**63 + 5, 2**63 + 4], dtype=np.uint64)
    assert as_set(search.find_pairs(unsigned.view(np.int64), 1)) == {(0, 1, 1)}
    with pytest.raises(ValueError):
        search.find_pairs(unsigned, -1)


def test_auto_picks_multi_index_for_large_inputs_only():
    assert search.best_chunk_count(1_000_000, 8) >= 3
    brute = search.COST_PER_PAIR_BRUTE * 1_000_000**2 / 2
    assert search.mih_cost(1_000_000, 8, search.best_chunk_count(1_000_000, 8)) < brute / 10


def test_chains_merge_into_one_cluster_whatever_the_order():
    # 0-1, 1-2, 2-3 is a chain; 4-5 another cluster; 6 alone
    edges = [(2, 3), (0, 1), (4, 5), (1, 2)]
    labels = cluster_labels(7, [a for a, _ in edges], [b for _, b in edges])
    assert labels.tolist() == [0, 0, 0, 0, 4, 4, 6]
    reversed_edges = edges[::-1]
    again = cluster_labels(7, [b for _, b in reversed_edges], [a for a, _ in reversed_edges])
    assert again.tolist() == labels.tolist()


def test_union_find_matches_connected_components_on_random_graph():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(0)
    n = 500
    i, j = rng.integers(0, n, 300), rng.integers(0, n, 300)
    labels = cluster_labels(n, i, j)
    _, reference = connected_components(coo_matrix((np.ones(300), (i, j)), shape=(n, n)), directed=False)
    # same partition: two elements share a label in one exactly when they do in the other
    assert np.array_equal(labels[:, None] == labels[None, :], reference[:, None] == reference[None, :])
    assert np.all(labels <= np.arange(n))  # canonical label = smallest member


def test_union_find_reports_whether_it_merged():
    forest = UnionFind(3)
    assert forest.union(0, 1) is True
    assert forest.union(1, 0) is False
    assert forest.find(1) == forest.find(0)

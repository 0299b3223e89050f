"""All pairs of 64-bit hashes within a Hamming distance, without a Python double loop.

Two exact algorithms (same result, tested against each other and a naive reference):

* ``brute_force_pairs``: blocks of rows XORed against every later hash, popcount with
  ``np.bitwise_count``, threshold. O(n^2) but ~1 ns per pair, the fastest choice up to ~100k hashes.
* ``multi_index_pairs``: multi-index hashing (Norouzi et al., 2012). The 64 bits are cut into
  ``m`` chunks; if two hashes differ in at most ``t`` bits, then by pigeonhole some chunk k differs
  in at most ``r_k`` bits, for any radii with ``sum(r_k + 1) > t`` (``chunk_radii``). For each chunk the hashes are bucketed by the chunk's value
  and every query visits the buckets within that radius: one vectorised pass over all hashes per
  flip mask. Candidates are then verified on the full 64 bits. The number of masks grows fast
  with the radius, so ``m`` is picked by a cost model. On 1M random hashes (2-core box, shared):
  ~90 s at ``t = 10`` on one core and ~15-20 s at ``t = 8``, against ~47 min extrapolated for brute
  force (bench/dedup_speed.py). Threads do not help here (the per-mask numpy calls are too short);
  forked processes, each taking a share of the masks, do.

``find_pairs`` picks between them. Pairs come back as int64 arrays ``i < j`` with their distance,
sorted by (i, j). ``with_mirrors=True`` also matches a hash against the *mirror* hash of every
other image (see ``phash.py``), so left-right flipped copies count as duplicates.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

# Elements per block of the brute-force distance matrix: 64k (512 KB) stays in L2; measured fastest.
BLOCK_ELEMENTS = 1 << 16
# Chunk tables are dense arrays of 2**bits offsets; 2**24 int64 = 128 MB is the most we allow.
MAX_CHUNK_BITS = 24
# Cost model in units of one brute-force pair (~5 ns on the 2-core dev box); only ratios matter.
COST_PER_PAIR_BRUTE = 1.0
COST_PER_QUERY_MIH = 5.0
COST_PER_CANDIDATE_MIH = 3.0


@dataclass
class Pairs:
    """Pairs ``(i[k], j[k])`` with ``i < j`` at Hamming distance ``distance[k]``."""

    i: np.ndarray
    j: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.i)

    @classmethod
    def empty(cls) -> "Pairs":
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))


def as_hashes(values) -> np.ndarray:
    """Any integer sequence (Python ints up to 2**64-1, int64 views) as a uint64 array."""
    array = np.asarray(values)
    if array.dtype == np.uint64:
        return array
    if array.dtype == object:
        return np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in array], dtype=np.uint64)
    return array.astype(np.int64).view(np.uint64)


def hamming(a, b) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(as_hashes(a), as_hashes(b))).astype(np.int64)


def _sorted_unique(i: np.ndarray, j: np.ndarray, distance: np.ndarray, n: int) -> Pairs:
    """Drop repeated (i, j) (keeping the smallest distance) and sort."""
    if len(i) == 0:
        return Pairs.empty()
    key = i.astype(np.int64) * n + j
    order = np.lexsort((distance, key))
    key, distance = key[order], distance[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, distance = key[first], distance[first]
    return Pairs(key // n, key % n, distance.astype(np.int64))


def brute_force_pairs(hashes, threshold: int) -> Pairs:
    """Every pair within ``threshold`` by blocked XOR + popcount over the upper triangle."""
    hashes = as_hashes(hashes)
    n = len(hashes)
    found_i, found_j, found_d = [], [], []
    start = 0
    while start < n:
        rows = max(1, min(n - start, BLOCK_ELEMENTS // max(1, n - start)))
        block = hashes[start : start + rows]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, start:])
        local_i, local_j = np.nonzero(distance <= threshold)
        upper = local_j > local_i  # the block's own diagonal and lower triangle are seen elsewhere
        local_i, local_j = local_i[upper], local_j[upper]
        found_d.append(distance[local_i, local_j].astype(np.int64))
        found_i.append(local_i + start)
        found_j.append(local_j + start)
        start += rows
    if not found_i:
        return Pairs.empty()
    return _sorted_unique(np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d), n)


# --- multi-index hashing ---------------------------------------------------------------------------


def chunk_layout(n_chunks: int) -> list[tuple[int, int]]:
    """(shift, bits) of ``n_chunks`` contiguous chunks covering the 64 bits, sizes differing by <= 1."""
    sizes = [64 // n_chunks + (1 if k < 64 % n_chunks else 0) for k in range(n_chunks)]
    layout, shift = [], 64
    for bits in sizes:
        shift -= bits
        layout.append((shift, bits))
    return layout


def flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set (0 first)."""
    masks = [0]
    for weight in range(1, radius + 1):
        masks += [sum(1 << b for b in combo) for combo in combinations(range(bits), weight)]
    return np.array(masks, dtype=np.int64)


def _ball_volume(bits: int, radius: int) -> int:
    return sum(math.comb(bits, w) for w in range(radius + 1))


def chunk_radii(threshold: int, n_chunks: int) -> list[int]:
    """Search radius per chunk. Exact as long as sum(radius + 1) > threshold: if every chunk differed by
    more than its radius, the hashes would differ by more than the threshold. For t=10 in 3 chunks
    this gives (3, 3, 2) rather than the textbook (3, 3, 3): a third fewer masks."""
    spare = max(0, threshold + 1 - n_chunks)
    return [spare // n_chunks + (1 if k < spare % n_chunks else 0) for k in range(n_chunks)]


def mih_cost(n: int, threshold: int, n_chunks: int) -> float:
    """Cost-model estimate for ``multi_index_pairs`` on ``n`` uniformly random hashes."""
    cost = 0.0
    for (_, bits), radius in zip(chunk_layout(n_chunks), chunk_radii(threshold, n_chunks)):
        masks = _ball_volume(bits, radius)
        candidates_per_query = n / 2.0**bits
        cost += masks * n * (COST_PER_QUERY_MIH + COST_PER_CANDIDATE_MIH * candidates_per_query)
    return cost


def best_chunk_count(n: int, threshold: int) -> int:
    """The chunk count the cost model prefers (chunks of at most MAX_CHUNK_BITS bits)."""
    smallest = math.ceil(64 / MAX_CHUNK_BITS)
    options = range(smallest, max(smallest, min(threshold + 1, 16)) + 1)
    return min(options, key=lambda m: mih_cost(n, threshold, m))


@dataclass
class _ChunkIndex:
    """Hashes bucketed by one chunk's value: sorted order plus dense bucket start/count tables."""

    order: np.ndarray  # hash indices sorted by chunk key
    sorted_keys: np.ndarray
    sorted_hashes: np.ndarray  # hashes in that order, so candidates verify without an extra gather
    bucket_start: np.ndarray  # per key value, position of its first hash in ``order``
    bucket_count: np.ndarray
    clear_positions: list  # per bit b: positions (in sorted order) whose key has bit b = 0 ...
    clear_keys: list  # ... and their keys

    @classmethod
    def build(cls, hashes: np.ndarray, shift: int, bits: int) -> "_ChunkIndex":
        keys = ((hashes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int32)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        counts = np.bincount(keys, minlength=1 << bits).astype(np.int32)
        starts = (np.cumsum(counts, dtype=np.int64) - counts).astype(np.int32)
        positions = [np.flatnonzero(((sorted_keys >> b) & 1) == 0).astype(np.int32) for b in range(bits)]
        return cls(order, sorted_keys, hashes[order], starts, counts, positions, [sorted_keys[p] for p in positions])


def _pairs_for_mask(index: _ChunkIndex, mask: int, threshold: int):
    """Pairs whose chunk keys differ by exactly ``mask``: one vectorised pass over the queries.

    For a non-zero mask a pair is met from both ends, so only hashes whose key has the mask's top
    bit clear ask (their partner has it set): each pair is generated once. Buckets hold few
    hashes, so members are expanded by a short loop over "k-th member of the bucket".
    """
    if mask == 0:  # same bucket: every hash meets the hashes after it in its own bucket
        positions = np.arange(len(index.order), dtype=np.int32)
        counts = index.bucket_count[index.sorted_keys]
        starts = index.bucket_start[index.sorted_keys]
    else:
        top = int(mask).bit_length() - 1
        positions, targets = index.clear_positions[top], index.clear_keys[top] ^ np.int32(mask)
        counts = index.bucket_count[targets]
        asking = np.flatnonzero(counts)
        positions, counts, starts = positions[asking], counts[asking], index.bucket_start[targets[asking]]
    found_i, found_j, found_d = [], [], []
    member = starts
    while len(positions):
        # positions/member: every query that still has a k-th member, and that member's position
        query, candidate = positions, member
        if mask == 0:
            later = candidate > query
            query, candidate = query[later], candidate[later]
        distance = np.bitwise_count(index.sorted_hashes[query] ^ index.sorted_hashes[candidate])
        close = np.flatnonzero(distance <= threshold)
        if len(close):
            i, j = index.order[query[close]], index.order[candidate[close]]
            found_i.append(np.minimum(i, j))
            found_j.append(np.maximum(i, j))
            found_d.append(distance[close].astype(np.int64))
        more = np.flatnonzero(counts > 1)  # buckets hold ~1 hash: the arrays shrink fast
        positions, member, counts = positions[more], member[more] + 1, counts[more] - 1
    if not found_i:
        return None
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


# The chunk index a forked worker searches: inherited through fork, never pickled.
_FORKED_INDEX: _ChunkIndex | None = None


def _pairs_for_masks(masks: np.ndarray, threshold: int) -> list:
    results = (_pairs_for_mask(_FORKED_INDEX, int(mask), threshold) for mask in masks)
    return [result for result in results if result is not None]


def _search_chunk(index: _ChunkIndex, masks: np.ndarray, threshold: int, workers: int, processes: int) -> list:
    """Every mask of one chunk; across forked processes when asked (each mask is independent)."""
    global _FORKED_INDEX
    if processes > 1 and len(masks) >= 4 * processes and "fork" in multiprocessing.get_all_start_methods():
        _FORKED_INDEX = index
        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
                batches = np.array_split(masks, processes * 8)
                return [found for part in pool.map(_pairs_for_masks, batches, [threshold] * len(batches)) for found in part]
        finally:
            _FORKED_INDEX = None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # numpy releases the GIL
        jobs = [pool.submit(_pairs_for_mask, index, int(m), threshold) for m in masks]
        return [result for result in (job.result() for job in jobs) if result is not None]


def multi_index_pairs(hashes, threshold: int, n_chunks: int | None = None, workers: int = 1, processes: int = 1) -> Pairs:
    """Every pair within ``threshold`` by multi-index hashing; exact (pigeonhole), see module doc.

    ``processes > 1`` splits each chunk's masks across forked processes: the per-mask numpy calls
    are too short for threads to overlap, but processes scale with the cores.
    """
    hashes = as_hashes(hashes)
    n = len(hashes)
    n_chunks = n_chunks or best_chunk_count(n, threshold)
    found = []
    for (shift, bits), radius in zip(chunk_layout(n_chunks), chunk_radii(threshold, n_chunks)):
        if bits > MAX_CHUNK_BITS:
            raise ValueError(f"{n_chunks} chunks give {bits}-bit chunks; at most {MAX_CHUNK_BITS} allowed")
        index = _ChunkIndex.build(hashes, shift, bits)
        found += _search_chunk(index, flip_masks(bits, radius), threshold, workers, processes)
    if not found:
        return Pairs.empty()
    return _sorted_unique(*(np.concatenate(parts) for parts in zip(*found)), n)


def _self_pairs(hashes: np.ndarray, threshold: int, method: str, workers: int, processes: int) -> Pairs:
    n = len(hashes)
    if method == "auto":
        brute_cost = COST_PER_PAIR_BRUTE * n * n / 2
        mih = mih_cost(n, threshold, best_chunk_count(n, threshold)) if n > 1 else math.inf
        method = "brute" if brute_cost <= mih else "mih"
    if method == "brute":
        return brute_force_pairs(hashes, threshold)
    if method == "mih":
        return multi_index_pairs(hashes, threshold, workers=workers, processes=processes)
    raise ValueError(f"unknown search method {method!r}; use auto, brute or mih")


def find_pairs(hashes, threshold: int, mirrors=None, method: str = "auto", workers: int = 1,
               processes: int | None = None) -> Pairs:
    """All pairs of images within ``threshold`` bits.

    With ``mirrors`` (each image's mirror hash), an image also matches another whose mirror is
    within the threshold: the search runs over hashes and mirrors together and maps back.
    ``processes`` (default: every core) only matters on the multi-index path, for large inputs.
    """
    processes = processes or os.cpu_count() or 1
    hashes = as_hashes(hashes)
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    n = len(hashes)
    if mirrors is None:
        return _self_pairs(hashes, threshold, method, workers, processes)
    both = np.concatenate([hashes, as_hashes(mirrors)])
    pairs = _self_pairs(both, threshold, method, workers, processes)
    i, j = pairs.i % n, pairs.j % n
    distinct = i != j  # an image against its own mirror says nothing
    i, j, distance = i[distinct], j[distinct], pairs.distance[distinct]
    low, high = np.minimum(i, j), np.maximum(i, j)
    return _sorted_unique(low, high, distance, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Find near-duplicate pairs among random 64-bit hashes (timing demo).")
    parser.add_argument("--n", type=int, default=100_000, help="number of random hashes")
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument("--method", choices=["auto", "brute", "mih"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    hashes = rng.integers(0, 2**64, size=args.n, dtype=np.uint64)
    started = time.perf_counter()
    pairs = find_pairs(hashes, args.threshold, method=args.method)
    print(f"{len(pairs)} pairs within {args.threshold} bits among {args.n} hashes in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

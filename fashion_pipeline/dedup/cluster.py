"""Union-find: near-duplicate pairs -> clusters (connected components).

Chains are resolved by transitivity: if A~B and B~C then A, B and C form one cluster even when
A and C are further apart than the threshold. That is the only grouping that does not depend on
the order pairs arrive in, and it guarantees the property the asset check verifies: no two
images kept from different clusters are within the threshold (any such pair would have merged
their clusters). The price is that a long chain of small edits can merge two fairly different
images; the asset reports the largest cluster so such a chain is visible.

Labels are canonical: each element gets the smallest index in its cluster.

One exception to plain transitivity: a black-and-white copy may join one colour cluster but never
merge two (two colourways of a garment share a greyscale version); see ``cluster_labels``.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


class UnionFind:
    """Disjoint sets over ``0..n-1`` with union by size and path halving (near O(1) per op)."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> bool:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return False
        if self.size[root_a] < self.size[root_b]:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]
        return True

    def roots(self) -> np.ndarray:
        """Every element's root, by vectorised pointer jumping (no per-element Python call)."""
        roots = self.parent.copy()
        while True:
            jumped = roots[roots]
            if np.array_equal(jumped, roots):
                return roots
            roots = jumped


def cluster_labels(n: int, i, j, grey_i=None, grey_j=None, coloured=None) -> np.ndarray:
    """Canonical cluster label (smallest member index) of each of ``n`` elements, given edges i-j.

    ``grey_i``/``grey_j``: edges between a black-and-white image and a colour one (matched on
    luminance alone, see ``phash.thumbnail_distance``), with ``coloured`` flagging the colour
    images. A greyscale copy matches every colourway of its picture equally well, so such an edge
    is applied after the others, in the order given (nearest first), and only when it does not
    join two clusters that both hold a colour image: the grey copy joins one colourway, never
    merges two. ``refused_grey_edges`` counts the edges left out.
    """
    labels, _ = cluster_labels_with_refusals(n, i, j, grey_i, grey_j, coloured)
    return labels


def cluster_labels_with_refusals(n: int, i, j, grey_i=None, grey_j=None, coloured=None) -> tuple[np.ndarray, int]:
    """``cluster_labels`` and how many grey edges were refused for bridging two colour clusters."""
    forest = UnionFind(n)
    for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
        forest.union(a, b)
    refused = 0
    if grey_i is not None and len(grey_i):
        has_colour = np.zeros(n, dtype=bool)
        np.logical_or.at(has_colour, forest.roots(), np.asarray(coloured, dtype=bool))
        for a, b in zip(np.asarray(grey_i).tolist(), np.asarray(grey_j).tolist()):
            root_a, root_b = forest.find(a), forest.find(b)
            if root_a == root_b:
                continue
            if has_colour[root_a] and has_colour[root_b]:
                refused += 1
                continue
            forest.union(a, b)
            has_colour[forest.find(a)] = has_colour[root_a] or has_colour[root_b]
    roots = forest.roots()
    # The smallest index of each root's set: minimum.at is order-independent.
    smallest = np.full(n, n, dtype=np.int64)
    np.minimum.at(smallest, roots, np.arange(n))
    return smallest[roots], refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cluster n elements given pairs as JSON [[i, j], ...] on stdin.")
    parser.add_argument("n", type=int)
    args = parser.parse_args(argv)
    pairs = np.array(json.load(sys.stdin), dtype=np.int64).reshape(-1, 2)
    labels = cluster_labels(args.n, pairs[:, 0], pairs[:, 1])
    print(json.dumps(labels.tolist()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

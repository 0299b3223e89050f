"""Our FID and KID against torchmetrics' implementations on the same features (1e-6 relative)."""
import numpy as np
import pytest
import torch

from fashion_pipeline.gan import quality

torchmetrics_fid = pytest.importorskip("torchmetrics.image.fid")
torchmetrics_kid = pytest.importorskip("torchmetrics.image.kid")


def _features(seed: int, n: int, dim: int, shift: float = 0.0) -> np.ndarray:
    """Correlated Gaussian features; one mixing matrix per dimension, so equal shifts mean equal distributions."""
    mixing = np.random.default_rng(dim).normal(size=(dim, dim)) / np.sqrt(dim)
    return np.random.default_rng(seed).normal(size=(n, dim)) @ mixing + shift


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fid_equals_torchmetrics(shift):
    a, b = _features(0, 600, 64), _features(1, 500, 64, shift)
    ours = quality.fid_from_features(a, b)
    mu1, mu2 = torch.from_numpy(a.mean(0)), torch.from_numpy(b.mean(0))
    s1, s2 = torch.from_numpy(np.cov(a, rowvar=False)), torch.from_numpy(np.cov(b, rowvar=False))
    reference = float(torchmetrics_fid._compute_fid(mu1, s1, mu2, s2))
    assert ours == pytest.approx(reference, rel=1e-6)
    if shift:  # a shifted set is measurably farther than the same distribution's sampling noise
        assert ours > 2 * quality.fid_from_features(a, _features(1, 500, 64))


def test_kid_subset_equals_torchmetrics_poly_mmd():
    a, b = _features(2, 200, 32), _features(3, 200, 32, 0.2)
    ours = quality.mmd2_unbiased(a, b)
    # torchmetrics' default kernel is (gamma x.y + coef)^degree with gamma = 1/d: the same cubic kernel
    reference = float(torchmetrics_kid.poly_mmd(torch.from_numpy(a), torch.from_numpy(b), degree=3, coef=1.0))
    assert ours == pytest.approx(reference, rel=1e-6)


def test_kid_subsets_are_proper_so_the_spread_is_real():
    a, b = _features(4, 120, 16), _features(5, 80, 16)
    assert quality.kid_subset_size(len(a), len(b), 1000) == 40  # half of the smaller set, not the whole set
    mean, spread = quality.kernel_inception_distance(a, b, subsets=30, subset_size=1000, seed=0)
    assert spread > 1e-6 and np.isfinite(mean)
    with pytest.raises(ValueError, match="at least 4 samples"):
        quality.kid_subset_size(3, 100)


def test_sample_plan_generates_at_least_the_feature_dimension_and_flags_small_real_sets():
    small = quality.sample_plan(n_real_available=500, dim=2048)
    assert small.n_fake == 2048 and small.n_real == 500 and not small.fid_reliable and "read KID" in small.note()
    big = quality.sample_plan(n_real_available=50_000, dim=512, min_fakes=5000, max_reals=10_000)
    assert (big.n_fake, big.n_real, big.fid_reliable) == (5000, 10_000, True)

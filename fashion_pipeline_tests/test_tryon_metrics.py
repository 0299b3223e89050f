"""Try-on metrics and warps against reference implementations (scikit-image, torchmetrics, scipy)."""
import numpy as np
import pytest
import torch
from scipy import stats
from skimage.metrics import structural_similarity
from skimage.transform import ThinPlateSplineTransform
from torchmetrics.functional.image import structural_similarity_index_measure

from fashion_pipeline.synthetic import tryon as synthetic
from fashion_pipeline.synthetic.parse import UPPER_GARMENT_IDS
from fashion_pipeline.tryon import baselines, layout, metrics, warp


def _pair(seed=0, shape=(40, 30, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    return a, b


def test_ssim_matches_scikit_image_and_torchmetrics():
    for seed in range(3):
        a, b = _pair(seed)
        ours = metrics.ssim(a, b)
        reference = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=255)
        tm = structural_similarity_index_measure(torch.from_numpy(b).permute(2, 0, 1)[None].double(),
                                                 torch.from_numpy(a).permute(2, 0, 1)[None].double(),
                                                 gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0)
        assert ours == pytest.approx(reference, abs=1e-9)
        assert ours == pytest.approx(float(tm), abs=5e-4)  # measured up to 1.2e-4 apart: torchmetrics builds its window differently
        assert 0.2 < ours < 0.99


def test_ssim_inside_a_region_averages_the_reference_map_there():
    a, b = _pair(4)
    _, full = structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, full=True)
    region = np.zeros(a.shape[:2], bool)
    region[10:25, 8:20] = True
    assert metrics.ssim(a, b, region) == pytest.approx(full.mean(axis=-1)[region].mean(), abs=1e-9)
    assert metrics.ssim(a, a, region) == pytest.approx(1.0)
    assert np.isnan(metrics.ssim(a, b, np.zeros_like(region)))


def test_l1_and_the_confidence_interval():
    a, b = _pair(5)
    assert metrics.l1(a, b) == pytest.approx(np.abs(a.astype(float) - b).mean() / 255)
    values = np.random.default_rng(0).normal(0.5, 0.1, 50)
    interval = metrics.mean_ci(list(values) + [float("nan")])
    low, high = stats.t.interval(0.95, 49, loc=values.mean(), scale=stats.sem(values))
    assert (interval.low, interval.high, interval.n) == (pytest.approx(low), pytest.approx(high), 50)


def _classical_tps(source, target, query):
    """Bookstein's TPS solved directly in float64: U(r) = r^2 log r, an affine part, sum w = sum w x = 0."""
    def kernel(a, b):
        r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.where(r2 > 0, 0.5 * r2 * np.log(np.where(r2 > 0, r2, 1.0)), 0.0)
    n = len(source)
    p = np.hstack([np.ones((n, 1)), source])
    system = np.block([[kernel(source, source), p], [p.T, np.zeros((3, 3))]])
    coefficients = np.linalg.solve(system, np.vstack([target, np.zeros((3, 2))]))
    return kernel(query, source) @ coefficients[:n] + np.hstack([np.ones((len(query), 1)), query]) @ coefficients[n:]


def test_our_tps_is_the_classical_one_of_scikit_image():
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, (12, 2))
    target = source + rng.normal(0, 6, (12, 2))
    query = rng.uniform(0, 100, (200, 2))
    ours = synthetic.fit_tps(source, target)(query)
    reference = ThinPlateSplineTransform.from_estimate(source, target)(query)
    np.testing.assert_allclose(ours, reference, atol=1e-3)  # measured 2.6e-4 apart: scikit-image solves in float32
    np.testing.assert_allclose(ours, _classical_tps(source, target, query), atol=1e-8)
    np.testing.assert_allclose(synthetic.fit_tps(source, target)(source), target, atol=1e-8)  # interpolates


def test_shape_context_matching_recovers_a_moved_and_scaled_outline():
    mask = np.zeros((80, 60), bool)
    mask[10:60, 15:45] = True
    mask[10:25, 5:55] = True  # a T shape: corners to match
    points = warp.outline(mask, 40)
    moved = points * 1.3 + np.array([7.0, -4.0])
    order = warp.match(points, np.roll(moved, 11, axis=0))
    recovered = np.roll(moved, 11, axis=0)[order]
    assert np.median(np.hypot(*(recovered - moved).T)) < 1e-6  # most points find their own image


def test_warped_paste_lands_closer_to_the_true_warp_than_no_warp(tmp_path):
    root = tmp_path / "ds"
    synthetic.write_dataset(root, synthetic.Spec(64, 48, train=2, test=6, seed=11))
    reader = layout.Layout(root, "test", 64, 48)
    errors, identity = [], []
    for pair in layout.read_pairs(root, "test"):
        sample = reader.load(pair)
        _, extras = baselines.METHODS["warped_paste"].run(sample)
        errors.append(extras["warp_error_px"])
        truth = warp.Warp(sample.truth_warp["person_points"], sample.truth_warp["cloth_points"])
        none = warp.Warp(sample.truth_warp["person_points"], sample.truth_warp["person_points"])
        identity.append(warp.endpoint_error(none, truth, np.isin(sample.truth_parse, UPPER_GARMENT_IDS)))
    assert np.mean(errors) < np.mean(identity)


def test_oracle_beats_paste_beats_unchanged(tmp_path):
    root = tmp_path / "ds"
    synthetic.write_dataset(root, synthetic.Spec(128, 96, train=2, test=16, seed=12))
    reader = layout.Layout(root, "test", 128, 96)
    scores = {name: [] for name in baselines.BASELINES}
    for pair in layout.read_pairs(root, "test"):
        sample = reader.load(pair)
        for name in baselines.BASELINES:
            output, _ = baselines.METHODS[name].run(sample)
            scores[name].append(metrics.ssim(output, sample.truth))
    mean = {name: np.mean(values) for name, values in scores.items()}
    assert mean["oracle_paste"] > mean["warped_paste"] > mean["unchanged"]


def test_oracle_is_unavailable_without_a_true_warp(tmp_path):
    root = tmp_path / "ds"
    synthetic.write_dataset(root, synthetic.Spec(64, 48, train=2, test=2, seed=13))
    sample = layout.Layout(root, "test", 64, 48).load(layout.read_pairs(root, "train")[0].__class__("test", "00002_00.jpg", "00002_00.jpg", 1))
    assert sample.truth_warp is None  # the paired setting of a real set
    with pytest.raises(baselines.MethodUnavailable):
        baselines.METHODS["oracle_paste"].run(sample)


def test_feature_distance_is_zero_for_identical_pictures_and_grows_with_change():
    a, b = _pair(6, (32, 24, 3))
    model = metrics.untrained_resnet(torch.device("cpu"))
    distance = metrics.FeatureDistance(metrics.resnet_stages(model), "untrained", torch.device("cpu"))
    stack = np.stack([a, a])
    other = np.stack([a, b])
    values = distance(stack, other)
    assert values[0] == pytest.approx(0.0, abs=1e-6) and values[1] > 0.01
    assert "LPIPS" not in type(distance).__name__


def _lpips_files(tmp_path):
    import torchvision

    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None)
    torch.save(alex.state_dict(), tmp_path / "alex.pth")
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(heads, tmp_path / "heads.pth")
    return alex, tmp_path / "alex.pth", tmp_path / "heads.pth"


def test_lpips_from_local_files_is_zero_on_identical_pictures_and_refuses_a_wrong_head_file(tmp_path):
    _, alex_path, heads_path = _lpips_files(tmp_path)
    lpips = metrics.LPIPS(alex_path, heads_path, torch.device("cpu"))
    a, b = _pair(7, (64, 48, 3))
    values = lpips(np.stack([a, a]), np.stack([a, b]))
    assert values[0] == pytest.approx(0.0, abs=1e-7) and values[1] > 0
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not an LPIPS v0.1 AlexNet head file"):
        metrics.LPIPS(alex_path, tmp_path / "bad.pth", torch.device("cpu"))


def test_lpips_equals_the_lpips_package_with_the_same_weights(tmp_path):
    lpips_package = pytest.importorskip("lpips")  # not a dependency: measured with lpips 0.1.4 installed aside
    alex, alex_path, heads_path = _lpips_files(tmp_path)
    reference = lpips_package.LPIPS(net="alex", pretrained=True, pnet_rand=True, model_path=str(heads_path), verbose=False)
    for index, (start, stop) in enumerate(metrics.LPIPS.SLICES, start=1):
        for layer in range(start, stop):
            getattr(reference.net, f"slice{index}")._modules[str(layer)].load_state_dict(alex.features[layer].state_dict())
    ours = metrics.LPIPS(alex_path, heads_path, torch.device("cpu"))
    a, b = _pair(8, (64, 48, 3))
    expected = reference(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1,
                         torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1)
    assert ours(a[None], b[None])[0] == pytest.approx(float(expected), rel=1e-5)

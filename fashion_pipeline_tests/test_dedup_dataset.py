"""Hashing, quarantine, caching, deduplication and the two checks, without Dagster."""
from __future__ import annotations

import io

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from fashion_pipeline.dedup import dataset, phash
from fashion_pipeline_tests.dedup_fixtures import build_fixture, distinct_image, jpeg_bytes


def test_hash_matches_imagehash_and_mirror_hash_matches_flipped_image(tmp_path):
    image = distinct_image(5, 400, 600)
    path = tmp_path / "a.png"
    image.save(path)
    result = phash.hash_file(path)
    assert result.error is None and (result.width, result.height) == (400, 600)
    # PNGs are resized with reducing_gap (faster); a bit or two may differ from imagehash's pure LANCZOS
    assert bin(result.phash ^ int(str(imagehash.phash(image)), 16)).count("1") <= 3
    flipped, _ = phash.phash_image(ImageOps.mirror(image))
    assert bin(int(flipped) ^ result.phash_mirror).count("1") <= 3
    assert bin(result.phash ^ result.phash_mirror).count("1") > 10


@pytest.mark.parametrize("content,expected", [
    (b"", "empty file"),
    (b"<html><body>rate limited</body></html>", "undecodable: UnidentifiedImageError"),
    ("truncated", "undecodable: OSError"),
])
def test_bad_files_come_back_with_a_reason_instead_of_raising(tmp_path, content, expected):
    if content == "truncated":
        data = jpeg_bytes(distinct_image(1))
        content = data[: len(data) // 3]
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    result = phash.hash_file(path)
    assert result.error is not None and result.error.startswith(expected)
    assert phash.hash_file(tmp_path / "absent.jpg").error.startswith("unreadable")


def test_hash_files_in_a_pool_agrees_with_serial(tmp_path, monkeypatch):
    paths = []
    for k in range(6):
        paths.append(tmp_path / f"{k}.jpg")
        paths[-1].write_bytes(jpeg_bytes(distinct_image(k)))
    monkeypatch.setattr(phash, "MIN_FILES_FOR_POOL", 2)
    assert phash.hash_files(paths, workers=2) == phash.hash_files(paths, workers=1)


def test_dataset_counts_provenance_and_highest_resolution(tmp_path):
    expected = build_fixture(tmp_path)
    result, info = dataset.build_dataset(tmp_path)
    stats = result.stats
    assert (stats["input_count"], stats["unique_count"], stats["exact_duplicates"], stats["near_duplicates"],
            stats["quarantined"]) == (expected["inputs"], expected["unique"], expected["exact"], expected["near"], expected["quarantined"])
    manifest = result.manifest.set_index("image_id")
    # image 1 exists at 320x480 (prada) and 640x960 (gucci): the larger copy is kept, both pins recorded
    merged = manifest[manifest["pin_ids"].apply(lambda ids: "11" in ids)].iloc[0]
    assert (merged["width"], merged["height"]) == (640, 960)
    assert list(merged["brands"]) == ["gucci", "prada"] and list(merged["pin_ids"]) == ["11", "22"]
    exact = manifest[manifest["pin_ids"].apply(lambda ids: "10" in ids)].iloc[0]
    assert list(exact["pin_ids"]) == ["10", "20", "21"] and exact["cluster_size"] == 3 and exact["n_variants"] == 1
    assert set(result.mapping["reason"]) == set(dataset.REASONS)
    assert stats["planted"]["recall"] == 1.0 and stats["planted"]["precision"] == 1.0
    for name in ("manifest", "mapping", "quarantine", "signatures", "summary"):
        assert info["paths"][name].exists() and info["paths"][name].parent == info["published"].folder
    assert info["published"].folder.parent == tmp_path / "pinterest_dataset" / "v"
    assert dataset.cache_path(tmp_path).is_file()  # the shared cache lies outside the build folders


def test_quarantine_records_truncated_and_missing_files(tmp_path):
    build_fixture(tmp_path)
    result, _ = dataset.build_dataset(tmp_path)
    reasons = dict(zip(result.quarantine["pin_id"], result.quarantine["reason"]))
    assert reasons["38"].startswith("undecodable: OSError") and "truncated" in reasons["38"]
    assert reasons["39"].startswith("unreadable")
    assert dataset.quarantine_reasons(result.quarantine) == {"undecodable": 1, "unreadable": 1}


def test_changed_file_is_quarantined_as_sha_mismatch(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    manifest_path = tmp_path / "pinterest_images" / "prada" / "manifest.parquet"
    frame = pd.read_parquet(manifest_path)
    (tmp_path / frame.file_path[0]).write_bytes(jpeg_bytes(distinct_image(1234)))
    result, _ = dataset.build_dataset(tmp_path)
    assert result.quarantine["reason"].str.startswith("sha256 mismatch").sum() == 1


def test_rerun_hashes_only_new_files(tmp_path):
    build_fixture(tmp_path, with_bad_files=False)
    first, _ = dataset.build_dataset(tmp_path)
    assert first.stats["files_hashed"] == 8 and first.stats["files_from_cache"] == 0
    brand = tmp_path / "pinterest_images" / "valentino"
    data = jpeg_bytes(distinct_image(77))
    import hashlib
    digest = hashlib.sha256(data).hexdigest()
    (brand / "images").mkdir(parents=True)
    (brand / "images" / f"{digest}.jpg").write_bytes(data)
    row = pd.read_parquet(tmp_path / "pinterest_images" / "prada" / "manifest.parquet").iloc[:1].copy()
    row[["pin_id", "brand", "sha256", "file_path"]] = ["90", "valentino", digest, f"pinterest_images/valentino/images/{digest}.jpg"]
    row.to_parquet(brand / "manifest.parquet", index=False)
    second, _ = dataset.build_dataset(tmp_path)
    assert second.stats["files_hashed"] == 1 and second.stats["files_from_cache"] == 8
    assert second.stats["unique_count"] == first.stats["unique_count"] + 1


def test_a_rebuild_with_nothing_new_reuses_the_folder_and_a_changed_file_makes_a_new_one(tmp_path):
    import os

    build_fixture(tmp_path, with_bad_files=False)
    first, info = dataset.build_dataset(tmp_path, dataset.DedupSettings(workers=1))
    folder = info["published"].folder
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    second, again = dataset.build_dataset(tmp_path, dataset.DedupSettings(workers=2))  # workers: not an input
    assert again["published"].reused and again["published"].folder == folder
    assert second.stats["files_hashed"] == 0 and second.stats["files_from_cache"] == 0
    assert second.manifest["image_id"].tolist() == first.manifest["image_id"].tolist()  # read back from the folder
    assert second.mapping[["pin_id", "reason"]].equals(first.mapping[["pin_id", "reason"]])
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    image = tmp_path / pd.read_parquet(tmp_path / "pinterest_images" / "prada" / "manifest.parquet").file_path[0]
    image.write_bytes(image.read_bytes()[:-200])  # truncated since download: a new input, quarantined
    third, changed = dataset.build_dataset(tmp_path)
    assert not changed["published"].reused and changed["published"].folder != folder
    assert third.stats["quarantined"] == first.stats["quarantined"] + 1
    assert sorted(os.listdir(tmp_path / "pinterest_dataset" / "v")) == sorted([folder.name, changed["published"].folder.name])
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_manifest_missing_a_column_names_the_file(tmp_path):
    path = tmp_path / "pinterest_images" / "prada" / "manifest.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"pin_id": ["1"]}).to_parquet(path)
    with pytest.raises(ValueError, match="prada/manifest.parquet: manifest lacks columns"):
        dataset.load_inputs(tmp_path)


def test_colour_check_splits_a_phash_collision(tmp_path):
    """Two different pictures with the same coarse grey layout: pHash pairs them, colours do not."""
    grey = np.asarray(distinct_image(8).convert("L"), dtype=np.float64) / 255
    warm = np.stack([grey * 255, grey * 140, grey * 60], axis=-1).astype(np.uint8)
    cold = np.stack([255 - grey * 200, grey * 120, grey * 255], axis=-1).astype(np.uint8)
    a, b = Image.fromarray(warm), Image.fromarray(cold)
    value_a, _, thumb_a = phash.signatures(a)
    value_b, _, thumb_b = phash.signatures(b)
    assert bin(int(value_a) ^ int(value_b)).count("1") <= dataset.DEFAULT_THRESHOLD
    assert phash.thumbnail_distance(thumb_a[None], thumb_b[None])[0] > dataset.DEFAULT_MAX_THUMB_DISTANCE
    resized = a.resize((160, 240))
    assert phash.thumbnail_distance(thumb_a[None], phash.signatures(resized)[2][None])[0] < 0.1


def test_no_inputs_gives_an_empty_dataset(tmp_path):
    result, info = dataset.build_dataset(tmp_path)
    assert result.stats["input_count"] == 0 and result.stats["unique_count"] == 0
    assert dataset.check_no_near_duplicates(info["published"].folder)[0]
    assert dataset.check_inputs_accounted(tmp_path, info["published"].folder)[0]


def test_checks_pass_on_good_output(tmp_path):
    build_fixture(tmp_path)
    folder = dataset.build_dataset(tmp_path)[1]["published"].folder
    assert dataset.check_no_near_duplicates(folder) == (True, {
        "kept_images": 5, "pairs_within_threshold": 0, "repeated_sha256": 0, "threshold": 10, "examples": []})
    passed, details = dataset.check_inputs_accounted(tmp_path, folder)
    assert passed and details["inputs"] == 11 and details["unmapped"] == 0


def test_near_duplicate_check_fails_when_two_kept_images_are_close(tmp_path):
    build_fixture(tmp_path)
    folder = dataset.build_dataset(tmp_path)[1]["published"].folder
    path = folder / "manifest.parquet"
    manifest = pd.read_parquet(path)
    manifest.loc[1, "phash"] = np.uint64(int(manifest.loc[0, "phash"]) ^ 0b111)  # 3 bits apart
    manifest.to_parquet(path, index=False)
    signatures_path = folder / dataset.SIGNATURES_FILE
    cache = pd.read_parquet(signatures_path).set_index("sha256")
    assert dataset.check_no_near_duplicates(folder)[0]  # colours still differ
    cache.loc[manifest.sha256[1], "thumb"] = cache.loc[manifest.sha256[0], "thumb"]  # and now they agree
    cache.reset_index().to_parquet(signatures_path, index=False)
    passed, details = dataset.check_no_near_duplicates(folder)
    assert not passed and details["pairs_within_threshold"] == 1 and "3 bits" in details["examples"][0]


def test_accounting_check_fails_on_dropped_or_dangling_rows(tmp_path):
    build_fixture(tmp_path)
    folder = dataset.build_dataset(tmp_path)[1]["published"].folder
    path = folder / "mapping.parquet"
    mapping = pd.read_parquet(path)
    mapping.iloc[1:].to_parquet(path, index=False)  # one input row unaccounted for
    passed, details = dataset.check_inputs_accounted(tmp_path, folder)
    assert not passed and details["unmapped"] == 1
    mapping.loc[mapping["reason"] == "near_duplicate", "image_id"] = "0000000000000000"
    mapping.to_parquet(path, index=False)
    passed, details = dataset.check_inputs_accounted(tmp_path, folder)
    assert not passed and details["mapped_to_missing_image"] == 2


def test_planted_evaluation_counts_missed_and_false_pairs():
    mapping = pd.DataFrame({
        "pin_id": ["1", "2", "3", "4", "5"], "reason": ["kept", "near_duplicate", "kept", "kept", "near_duplicate"],
        "image_id": ["a", "a", "b", "c", "c"],
    })
    truth = pd.DataFrame({"pin_id": ["1", "2", "3", "4", "5"], "look_id": ["L1", "L1", "L2", "L2", "L3"],
                          "copy_kind": ["original", "resized", "original", "cropped", "original"]})
    planted = dataset.evaluate_planted(mapping, truth)
    assert (planted["planted_pairs"], planted["found_pairs"], planted["true_pairs"]) == (2, 2, 1)
    assert planted["recall"] == 0.5 and planted["precision"] == 0.5
    assert planted["by_copy_kind"] == {"cropped": {"planted": 1, "found": 0}, "resized": {"planted": 1, "found": 1}}


def test_uniform_frame_is_trimmed_but_a_backdrop_is_not():
    image = distinct_image(21, 300, 450)
    framed = ImageOps.expand(image, border=20, fill=(255, 255, 255))
    assert phash.trim_uniform_border(framed).size == image.size
    value, _, thumb = phash.signatures(image)
    framed_value, _, framed_thumb = phash.signatures(framed)
    assert bin(int(value) ^ int(framed_value)).count("1") <= 2
    assert phash.thumbnail_distance(thumb[None], framed_thumb[None])[0] < 0.1
    backdrop = Image.new("RGB", (300, 450), (240, 240, 240))
    backdrop.paste(image.resize((100, 150)), (100, 150))  # small figure on a plain backdrop: keep it whole
    assert phash.trim_uniform_border(backdrop).size == (300, 450)


def test_a_plain_area_on_one_side_is_not_trimmed():
    image = distinct_image(22, 300, 400)
    floor = Image.new("RGB", (300, 480), (250, 250, 250))
    floor.paste(image, (0, 0))  # uniform strip at the bottom only, touching no frame on the other sides
    assert phash.trim_uniform_border(floor).size == (300, 480)

"""The embedded Pinterest-like site over plain HTTP: DOM contract, feeds, login, images, duplicates, faults."""
from __future__ import annotations

import http.client
import io
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import imagehash
import pytest
from PIL import Image

from fashion_pipeline.pinterest.site import EmbeddedPinterestSite, FaultConfig, SiteMix, brand_slug
from fashion_pipeline.pinterest.site.catalog import (
    END_BOOKMARK, RECOMMENDATION_HEADINGS, THESIS_BRANDS, SiteCatalog, decode_bookmark, encode_bookmark,
)
from fashion_pipeline.pinterest.site.faults import FaultPlanner

BRANDS = ["Prada", "Chloé", "Yves Saint Laurent"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with EmbeddedPinterestSite(tmp_path_factory.mktemp("site"), BRANDS, pins_per_board=40, seed=3) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(request):
    """Every test starts without faults, even after one that set some on the shared site."""
    if "site" in request.fixturenames:
        request.getfixturevalue("site").set_faults(None)


def fetch(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) without raising on HTTP errors and without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def feed_json(site, resource: str, slug: str, bookmark: str | None, **extra) -> dict:
    query = urllib.parse.urlencode({"board": slug, "bookmark": bookmark or "", **extra})
    status, _, body = fetch(f"{site.base_url}/resource/{resource}/get/?{query}")
    assert status == 200, body
    return json.loads(body)["resource_response"]


class PinCollector(HTMLParser):
    """Pins inside board-feed as (pin_id, href, img attributes), plus every data-test-id seen."""

    def __init__(self):
        super().__init__()
        self.pins: list[dict] = []
        self.test_ids: list[str] = []
        self.inputs: dict[str, dict] = {}
        self.buttons: list[dict] = []
        self._in_board_feed = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        test_id = attrs.get("data-test-id")
        if test_id:
            self.test_ids.append(test_id)
        if test_id == "board-feed":
            self._in_board_feed = True
        elif test_id in ("more-ideas-header", "more-ideas-feed"):
            self._in_board_feed = False
        if tag == "div" and test_id == "pin" and self._in_board_feed:
            self.pins.append({"id": attrs["data-pin-id"]})
        elif tag == "a" and self.pins and "href" not in self.pins[-1]:
            self.pins[-1]["href"] = attrs["href"]
        elif tag == "img" and self.pins and "img" not in self.pins[-1]:
            self.pins[-1]["img"] = attrs
        elif tag == "input":
            self.inputs[attrs.get("id", "")] = attrs
        elif tag == "button":
            self.buttons.append(attrs)


def parse(html: bytes) -> PinCollector:
    collector = PinCollector()
    collector.feed(html.decode("utf-8"))
    return collector


# ---- catalog -----------------------------------------------------------------------------

def test_brand_slugs_fold_accents_and_spaces():
    assert brand_slug("Chloé") == "chloe"
    assert brand_slug("Hermès") == "hermes"
    assert brand_slug("Yves Saint Laurent") == "yves-saint-laurent"
    with pytest.raises(ValueError, match="no letters"):
        brand_slug("  ")


def test_catalog_is_deterministic_and_boards_are_independent_of_other_brands():
    first = SiteCatalog(BRANDS, 30, seed=5).ground_truth()
    assert first == SiteCatalog(BRANDS, 30, seed=5).ground_truth()
    assert first != SiteCatalog(BRANDS, 30, seed=6).ground_truth()
    alone = SiteCatalog(["Prada"], 30, seed=5)
    assert [p.pin_id for p in alone.boards["prada"].pins] == first["boards"]["prada"]["pin_ids"]
    assert all(re.fullmatch(r"\d{18}", pin_id) for pin_id in first["pins"])


def test_pins_per_board_accepts_a_mapping_and_names_a_missing_brand():
    catalog = SiteCatalog(["Prada", "Gucci"], {"Prada": 5, "gucci": 9})
    assert [len(b.pins) for b in catalog.boards.values()] == [5, 9]
    with pytest.raises(ValueError, match="Gucci"):
        SiteCatalog(["Prada", "Gucci"], {"Prada": 5})


def test_planted_duplicates_link_looks_across_brands():
    truth = SiteCatalog(BRANDS, 40, seed=1, mix=SiteMix(duplicate_rate=0.2)).ground_truth()
    pins = truth["pins"]
    copies = {pin_id: row for pin_id, row in pins.items() if row["copy_kind"] != "original"}
    assert len(copies) == 3 * 8
    for row in copies.values():
        source = pins[row["copy_of"]]
        assert source["copy_kind"] == "original" and source["content"] == "look"
        assert source["brand"] != row["brand"] and source["look_id"] == row["look_id"]
        assert (row["image_hex"] == source["image_hex"]) == (row["copy_kind"] == "repin")
    clustered = {pin_id for cluster in truth["planted_duplicates"] for pin_id in cluster["pin_ids"]}
    assert set(copies) <= clustered
    assert all(len(c["brands"]) >= 2 for c in truth["planted_duplicates"])


def test_mix_is_near_the_thesis_proportions():
    pins = SiteCatalog(["A", "B", "C", "D"], 250, seed=0).ground_truth()["pins"].values()
    share = lambda test: sum(map(test, pins)) / len(pins)  # noqa: E731
    assert 0.13 < share(lambda p: p["content"] == "distractor") < 0.23
    assert 0.45 < share(lambda p: p["outfit"] == "full") < 0.65
    assert 0.03 < share(lambda p: not p["has_original"]) < 0.10
    assert 0.08 < share(lambda p: p["original_ext"] in ("png", "webp")) < 0.20
    assert 0.02 < share(lambda p: p["original_ext"] == "gif") < 0.08
    assert not any(p["is_video"] for p in pins)  # video pins are off unless a mix asks for them


def test_gif_and_video_choices_leave_every_other_pin_unchanged():
    brands = ["A", "B", "C"]
    plain = SiteCatalog(brands, 80, seed=0, mix=SiteMix(gif_rate=0.0)).ground_truth()["pins"]
    gifs = SiteCatalog(brands, 80, seed=0, mix=SiteMix(gif_rate=0.2)).ground_truth()["pins"]
    changed = {pid for pid in plain if plain[pid] != gifs[pid]}
    assert changed and all(gifs[pid]["original_ext"] == "gif" for pid in changed)
    videos = SiteCatalog(brands, 80, seed=0, mix=SiteMix(video_rate=0.2)).ground_truth()
    is_video = {pid: row["is_video"] for pid, row in videos["pins"].items()}
    assert 0.1 < sum(is_video.values()) / len(is_video) < 0.3
    # A planted duplicate is never a video pin, nor a copy of one: the dedup ground truth stays images.
    for cluster in videos["planted_duplicates"]:
        assert not any(is_video[pid] for pid in cluster["pin_ids"])


def test_each_board_draws_a_recommendations_heading_in_english_or_russian():
    catalog = SiteCatalog(THESIS_BRANDS, 5, seed=0)
    drawn = {catalog.recommendations_heading(slug) for slug in catalog.boards}
    assert drawn == set(RECOMMENDATION_HEADINGS)  # the 20 thesis boards cover every phrasing and both languages
    assert catalog.recommendations_heading("prada") == SiteCatalog(["Prada"], 5, seed=0).recommendations_heading("prada")


def test_bookmarks_round_trip_and_reject_garbage():
    assert decode_bookmark(encode_bookmark("more", 75, True)) == ("more", 75, True)
    for bad in ("", "nonsense", encode_bookmark("board", 1)[:-1] + "!!"):
        with pytest.raises(ValueError, match="invalid bookmark"):
            decode_bookmark(bad)


def test_ground_truth_is_written_next_to_the_image_cache(site):
    written = json.loads((site.root_dir / "ground_truth.json").read_text())
    assert written == json.loads(json.dumps(site.ground_truth()))
    frame = site.ground_truth_frame()
    assert len(frame) == 3 * 40 and {"pin_id", "look_id", "copy_kind", "brand"} <= set(frame.columns)


# ---- pages and feeds ---------------------------------------------------------------------

def test_board_url_and_dom_follow_the_contract(site):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/runwayarchive/chloe-runway/", site.board_url("Chloé"))
    status, headers, body = fetch(site.board_url("Chloé"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = parse(body)
    assert [pin["id"] for pin in page.pins] == site.board_pin_ids("Chloé")[:15]
    assert "more-ideas-header" not in page.test_ids  # the boundary comes from JS, after the last page
    for pin in page.pins:
        assert pin["href"] == f"/pin/{pin['id']}/"
        src, srcset = pin["img"]["src"], pin["img"]["srcset"]
        entries = [item.strip().split(" ") for item in srcset.split(",")]
        assert [descriptor for _, descriptor in entries] == ["1x", "2x", "3x", "4x"]  # as on a real board page
        assert entries[0][0] == src and "/236x/" in src
        assert [url.replace("/474x/", "/236x/").replace("/736x/", "/236x/") for url, _ in entries[:3]] == [src] * 3
        spec = site.catalog.pin(pin["id"]).image
        assert entries[3][0] == site.base_url + spec.path("originals")  # the original, with its own extension
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/i/236x/([0-9a-f]{2}/){3}[0-9a-f]{32}\.jpg", src)


def test_feed_pages_walk_the_whole_board_then_more_ideas_never_end(site):
    board_ids = site.board_pin_ids("Prada")
    html = fetch(site.board_url("Prada"))[2].decode()
    config = json.loads(re.search(r'id="board-config">(.*?)</script>', html).group(1))
    seen, bookmark = [p["id"] for p in parse(html.encode()).pins], config["bookmark"]
    while bookmark != END_BOOKMARK:
        page = feed_json(site, "BoardFeedResource", "prada", bookmark)
        seen += [pin["id"] for pin in page["data"]]
        bookmark = page["bookmark"]
        assert set(page["data"][0]["images"]) == {"236x", "474x", "736x", "orig"}
    assert seen == board_ids

    all_board_ids = {i for b in BRANDS for i in site.board_pin_ids(b)}
    more, bookmark = [], config["more_bookmark"]
    for _ in range(4):
        page = feed_json(site, "MoreIdeasResource", "prada", bookmark)
        more += [pin["id"] for pin in page["data"]]
        bookmark = page["bookmark"]
        assert bookmark != END_BOOKMARK
    assert len(more) == len(set(more)) == 100 and not set(more) & all_board_ids
    assert feed_json(site, "MoreIdeasResource", "prada", config["more_bookmark"])["data"][0]["id"] == more[0]


def test_feed_rejects_bad_requests_with_clear_errors(site):
    base = site.base_url
    status, _, body = fetch(f"{base}/resource/BoardFeedResource/get/?board=prada&bookmark=zzz")
    assert status == 400 and "invalid bookmark" in json.loads(body)["error"]
    status, _, body = fetch(f"{base}/resource/BoardFeedResource/get/?board=nope")
    assert status == 404 and "nope" in json.loads(body)["error"]
    more = encode_bookmark("more", 0)
    assert fetch(f"{base}/resource/BoardFeedResource/get/?board=prada&bookmark={more}")[0] == 400


def test_search_serves_the_board_for_brand_runway_queries(site):
    for query in ("Chloé runway", "chloe RUNWAY", "Chloé"):
        status, _, body = fetch(site.search_url(query))
        assert status == 200
        assert [pin["id"] for pin in parse(body).pins] == site.board_pin_ids("Chloé")[:15]
    page = parse(fetch(site.search_url("hats of 1920"))[2])
    assert page.pins == [] and b"<h2>More ideas</h2>" in fetch(site.search_url("hats of 1920"))[2]


def test_pin_page_and_unknown_paths(site):
    pin_id = site.board_pin_ids("Prada")[0]
    status, _, body = fetch(site.pin_url(pin_id))
    assert status == 200 and b'data-test-id="closeup-image"' in body
    assert fetch(site.pin_url("123"))[0] == 404
    assert fetch(site.base_url + "/no/such/page/")[0] == 404
    home = parse(fetch(site.base_url + "/")[2])
    assert home.test_ids.count("board-link") == 3


# ---- login -------------------------------------------------------------------------------

def test_login_form_sets_a_session_cookie_and_never_logs_the_password(site):
    form = parse(fetch(site.base_url + "/login/")[2])
    assert form.inputs["email"]["name"] == "id" and form.inputs["password"]["name"] == "password"
    assert any(button.get("type") == "submit" for button in form.buttons)

    secret = "s3cret-Pa55word"
    bad = fetch(site.base_url + "/login/", "POST", b"id=a%40b.c&password=")
    assert bad[0] == 401
    before = site.session_requests
    fields = urllib.parse.urlencode({"id": "model@example.com", "password": secret}).encode()
    status, headers, _ = fetch(site.base_url + "/login/", "POST", fields)
    assert status == 302 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith("_pinterest_sess=")
    body = fetch(site.board_url("Prada"), headers={"Cookie": cookie})[2]
    assert b'data-test-id="header-profile"' in body
    assert site.session_seen and site.session_requests == before + 1
    fetch(site.board_url("Prada"), headers={"Cookie": "_pinterest_sess=forged"})
    assert site.session_requests == before + 1
    recorded = repr(list(site.request_log)) + repr(site.stats())
    assert secret not in recorded and "model@example.com" not in recorded


# ---- images ------------------------------------------------------------------------------

def spec_of(site, pin_id):
    return site.catalog.pin(pin_id).image


def image_url(site, spec, size, ext=None):
    path = spec.path(size)
    return site.base_url + (path.rsplit(".", 1)[0] + "." + ext if ext else path)


def find_pin(site, test):
    return next(p for b in BRANDS for p in site.catalog.board_for_brand(b).pins if test(p))


def test_renditions_and_originals_have_the_promised_sizes_and_types(site):
    spec = find_pin(site, lambda p: p.image.has_original and p.image.original_ext == "jpg").image
    for size, width in (("236x", 236), ("474x", 474), ("736x", 736), ("originals", spec.size[0])):
        status, headers, body = fetch(image_url(site, spec, size))
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(body)).size == (width, spec.rendition_size(size)[1] if size != "originals" else spec.size[1])
    status, headers, body = fetch(image_url(site, spec, "236x"), method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000


def test_original_extension_and_missing_originals(site):
    png = find_pin(site, lambda p: p.image.has_original and p.image.original_ext == "png").image
    assert fetch(image_url(site, png, "originals", "jpg"))[0] == 404
    status, headers, body = fetch(image_url(site, png, "originals", "png"))
    assert status == 200 and headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(body)).format == "PNG"
    assert fetch(image_url(site, png, "236x", "png"))[0] == 404

    webp = find_pin(site, lambda p: p.image.has_original and p.image.original_ext == "webp").image
    assert fetch(image_url(site, webp, "originals", "webp"))[1]["Content-Type"] == "image/webp"

    gif = find_pin(site, lambda p: p.image.has_original and p.image.original_ext == "gif").image
    status, headers, body = fetch(image_url(site, gif, "originals", "gif"))
    animated = Image.open(io.BytesIO(body))
    assert status == 200 and headers["Content-Type"] == "image/gif" and animated.format == "GIF"
    assert animated.n_frames == 3 and animated.size == gif.size
    still = Image.open(io.BytesIO(fetch(image_url(site, gif, "736x"))[2]))
    assert still.format == "JPEG"  # pinimg's sized copies of a GIF are stills

    missing = find_pin(site, lambda p: not p.image.has_original).image
    for ext in ("jpg", "png", "webp"):
        status, _, body = fetch(image_url(site, missing, "originals", ext))
        assert status == 403 and b"AccessDenied" in body
    status, _, body = fetch(image_url(site, missing, "736x"))
    assert status == 200 and Image.open(io.BytesIO(body)).width == min(736, missing.size[0])


def test_malformed_image_paths_answer_404(site):
    spec = spec_of(site, site.board_pin_ids("Prada")[0])
    good = spec.path("236x")
    for path in (good.replace(spec.hex[:2] + "/", "00/", 1), "/i/236x/../../etc/passwd",
                 "/i/236x/ab/cd/ef/" + "0" * 32 + ".jpg", "/i/1200x" + good[len("/i/236x"):]):
        assert fetch(site.base_url + path)[0] == 404, path


def test_images_are_deterministic_and_drawn_once_under_concurrency(tmp_path):
    def original_bytes(root, seed, threads=1):
        with EmbeddedPinterestSite(root, ["Prada"], 3, seed=seed) as s:
            spec = s.catalog.boards["prada"].pins[0].image
            url = image_url(s, spec, "originals") if spec.has_original else image_url(s, spec, "736x")
            results = [None] * threads
            workers = [threading.Thread(target=lambda i=i: results.__setitem__(i, fetch(url)[2])) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            return results, s.store.rendered

    concurrent, rendered = original_bytes(tmp_path / "a", 0, threads=6)
    assert rendered == 1 and len(set(concurrent)) == 1
    assert original_bytes(tmp_path / "b", 0)[0][0] == concurrent[0]
    assert original_bytes(tmp_path / "c", 1)[0][0] != concurrent[0]
    assert not list((tmp_path / "a").rglob("*.part"))


def test_planted_copies_are_identical_or_near_duplicates(tmp_path):
    mix = SiteMix(duplicate_rate=0.5, missing_original_rate=0.0)
    with EmbeddedPinterestSite(tmp_path, ["Prada", "Gucci", "Dior"], 10, seed=2, mix=mix) as s:
        copies = [p for b in s.catalog.boards.values() for p in b.pins if p.copy_of]
        assert {p.copy_kind for p in copies} >= {"identical", "reencoded", "resized", "cropped", "bordered"}
        for copy in copies:
            source = s.catalog.pin(copy.copy_of)
            copy_bytes = fetch(image_url(s, copy.image, "originals"))[2]
            source_bytes = fetch(image_url(s, source.image, "originals"))[2]
            if copy.copy_kind in ("repin", "identical"):
                assert copy_bytes == source_bytes
                continue
            assert copy_bytes != source_bytes
            copy_image, source_image = (Image.open(io.BytesIO(b)) for b in (copy_bytes, source_bytes))
            assert copy_image.size == copy.image.size
            distance = imagehash.phash(copy_image) - imagehash.phash(source_image)
            assert distance <= 14, (copy.copy_kind, distance)


# ---- faults ------------------------------------------------------------------------------

def first_image_url(site, brand="Prada", index=1):
    spec = spec_of(site, site.board_pin_ids(brand)[index])
    return image_url(site, spec, "236x")


def test_transient_500_and_429_succeed_after_n_attempts(site):
    url = first_image_url(site)
    site.set_faults(FaultConfig(error_500_rate=1.0, transient_attempts=2))
    assert [fetch(url)[0] for _ in range(3)] == [500, 500, 200]
    site.set_faults(FaultConfig(error_429_rate=1.0, retry_after_s=7))
    status, headers, _ = fetch(url)
    assert status == 429 and headers["Retry-After"] == "7"
    assert fetch(url)[0] == 200
    assert site.stats()["faults_injected"] == {"429": 1}


def test_truncated_image_promises_more_than_it_sends(site):
    site.set_faults(FaultConfig(truncated_rate=1.0))
    with pytest.raises(http.client.IncompleteRead):
        urllib.request.urlopen(first_image_url(site), timeout=30).read()
    with pytest.raises(http.client.IncompleteRead):  # persistent: a retry meets it again
        urllib.request.urlopen(first_image_url(site), timeout=30).read()


def test_garbage_and_html_bodies_are_not_decodable_images(site):
    url = first_image_url(site)
    site.set_faults(FaultConfig(garbage_rate=1.0))
    status, headers, body = fetch(url)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and len(body) == int(headers["Content-Length"])
    assert body[:2] == b"\xff\xd8"
    with pytest.raises(Exception):
        Image.open(io.BytesIO(body)).load()
    site.set_faults(FaultConfig(html_as_image_rate=1.0))
    status, headers, body = fetch(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")
    site.set_faults(FaultConfig(html_disguised_rate=1.0))
    status, headers, body = fetch(url)
    assert headers["Content-Type"] == "image/jpeg" and body.startswith(b"<!DOCTYPE html>")


def test_slow_fault_and_latency_pause_image_responses_only(tmp_path, monkeypatch):
    from fashion_pipeline.pinterest.site import server

    pauses = []
    monkeypatch.setattr(server, "_pause", pauses.append)
    faults = FaultConfig(slow_rate=1.0, slow_delay_s=2.5)
    with EmbeddedPinterestSite(tmp_path, ["Prada"], 3, faults=faults, latency_s=0.05) as s:
        assert fetch(s.board_url("Prada"))[0] == 200
        assert pauses == []  # pages are spared unless include_pages
        assert fetch(first_image_url(s, index=0))[0] == 200
        assert pauses == [0.05, 2.5] and s.stats()["faults_injected"] == {"slow": 1}


def test_faults_can_be_forced_per_request_and_spare_pages_by_default(site):
    url = first_image_url(site)
    assert fetch(url + "?fault=500")[0] == 500
    assert fetch(url + "?fault=html")[1]["Content-Type"].startswith("text/html")
    status, _, body = fetch(url + "?fault=bogus")
    assert status == 400 and b"unknown fault 'bogus'" in body
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlanner().decide("/x", True, forced="bogus")
    site.set_faults(FaultConfig(error_500_rate=1.0, transient_attempts=99))
    assert fetch(site.board_url("Prada"))[0] == 200  # pages only fail with include_pages
    site.set_faults(error_500_rate=1.0, transient_attempts=99, include_pages=True)
    assert fetch(site.board_url("Prada"))[0] == 500
    assert fetch(f"{site.base_url}/resource/BoardFeedResource/get/?board=prada")[0] == 500


def test_fault_draws_are_deterministic_per_url_and_follow_the_rates():
    config = FaultConfig(seed=4, error_500_rate=0.2, truncated_rate=0.1, transient_attempts=1)
    paths = [f"/i/236x/{i:04d}.jpg" for i in range(2000)]
    first = [FaultPlanner(config).decide(p, True) for p in paths]
    assert first == [FaultPlanner(config).decide(p, True) for p in paths]
    assert 0.17 < first.count("500") / len(paths) < 0.23
    assert 0.08 < first.count("truncated") / len(paths) < 0.12
    other_seed = [FaultPlanner(FaultConfig(seed=5, error_500_rate=0.2)).decide(p, True) for p in paths]
    assert other_seed != [k if k == "500" else None for k in first]
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultConfig(error_500_rate=0.7, garbage_rate=0.5)


def test_endless_feed_never_reaches_the_boundary(site):
    board_ids = site.board_pin_ids("Chloé")
    site.set_faults(FaultConfig(endless_feed=True))
    html = fetch(site.board_url("Chloé"))[2].decode()
    bookmark = json.loads(re.search(r'id="board-config">(.*?)</script>', html).group(1))["bookmark"]
    seen = []
    for _ in range(6):
        page = feed_json(site, "BoardFeedResource", "chloe", bookmark)
        assert page["bookmark"] != END_BOOKMARK
        seen += [pin["id"] for pin in page["data"]]
        bookmark = page["bookmark"]
    assert len(seen) == 150 and seen[:25] == board_ids[15:40] and len(set(seen)) == 150
    site.set_faults(None)
    html = fetch(site.board_url("Chloé") + "?endless=1")[2].decode()
    bookmark = json.loads(re.search(r'id="board-config">(.*?)</script>', html).group(1))["bookmark"]
    assert decode_bookmark(bookmark)[2] is True


def test_draw_scale_keeps_the_promised_size_and_has_its_own_cache(tmp_path):
    from fashion_pipeline.pinterest.site.images import ImageStore

    catalog = SiteCatalog(["Prada"], 2, seed=0)
    spec = catalog.boards["prada"].pins[0].image
    full, half = ImageStore(tmp_path, catalog, 1.0), ImageStore(tmp_path, catalog, 0.5)
    assert full.file_path(spec, "originals") != half.file_path(spec, "originals")
    assert Image.open(half.ensure(spec, "originals")).size == spec.size
    with pytest.raises(ValueError, match="draw_scale"):
        ImageStore(tmp_path, catalog, 0.0)


def test_a_failure_while_drawing_answers_500_with_the_reason(tmp_path, monkeypatch):
    from fashion_pipeline.pinterest.site import images

    def broken_draw(spec, scale=1.0, hard_looks=True):
        raise RuntimeError(f"cannot draw {spec.hex}")

    monkeypatch.setattr(images, "draw", broken_draw)
    with EmbeddedPinterestSite(tmp_path, ["Prada"], 2) as s:
        spec = s.catalog.boards["prada"].pins[0].image
        status, _, body = fetch(image_url(s, spec, "236x"))
        assert status == 500 and f"cannot draw {spec.hex}".encode() in body
        assert not list(tmp_path.rglob("*.jpg"))  # nothing half-made lands in the cache


def test_unknown_brand_names_the_brands_served(site):
    with pytest.raises(KeyError, match="no board for brand 'Zara'.*Prada"):
        site.board_url("Zara")
    changed = site.set_faults(error_429_rate=0.5)
    assert changed.error_429_rate == 0.5 and changed.error_500_rate == 0.0

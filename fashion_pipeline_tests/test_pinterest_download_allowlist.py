"""The downloader fetches only images from image hosts (issue 20.6): http(s) only, hosts from an
allowlist, redirects followed only within it, everything else refused and counted by reason."""
from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from fashion_pipeline.pinterest.download import (
    DEFAULT_IMAGE_HOSTS, DownloadFailed, DownloadSettings, Fetcher, Pin, check_image_url, download_pins, host_allowed,
    validate_image,
)

PNG = io.BytesIO()
Image.new("RGB", (40, 30), (200, 10, 10)).save(PNG, format="PNG")
PNG = PNG.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """/img.png an image; /to-img a redirect to it; /away a redirect off the allowlist; /loop forever."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        port = self.server.server_address[1]
        targets = {"/to-img": "/img.png", "/to-img-absolute": f"http://127.0.0.1:{port}/img.png",
                   "/away": "http://images.example.org/img.png", "/to-localhost": f"http://localhost:{port}/img.png",
                   "/to-file": "file:///etc/passwd", "/loop": "/loop"}
        if self.path in targets:
            self.send_response(302)
            self.send_header("Location", targets[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/img.png":
            body, kind = PNG, "image/png"
        elif self.path == "/clip.mp4":
            body, kind = b"\x00\x00\x00\x18ftypmp42", "video/mp4"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


SETTINGS = DownloadSettings(requests_per_second=0, max_attempts=1, timeout_s=5).with_hosts("127.0.0.1")


def test_pinimg_is_allowed_by_default_on_a_domain_boundary():
    assert DownloadSettings().allowed_hosts == DEFAULT_IMAGE_HOSTS == ("pinimg.com",)
    assert host_allowed("i.pinimg.com", DEFAULT_IMAGE_HOSTS) and host_allowed("PINIMG.COM.", DEFAULT_IMAGE_HOSTS)
    for host in ("evilpinimg.com", "pinimg.com.evil.org", "127.0.0.1", "www.pinterest.com"):
        assert not host_allowed(host, DEFAULT_IMAGE_HOSTS), host
    assert host_allowed("127.0.0.1", ("127.0.0.1",)) and not host_allowed("127.0.0.2", ("127.0.0.1",))


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "refused_scheme"),
    ("ftp://i.pinimg.com/originals/a.jpg", "refused_scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", "refused_scheme"),
    ("javascript:alert(1)", "refused_scheme"),
    ("https://images.example.org/a.jpg", "refused_host"),
    ("http://169.254.169.254/latest/meta-data/", "refused_host"),
    ("https:///no-host.jpg", "refused_host"),
])
def test_anything_but_http_s_on_an_image_host_is_refused(url, reason):
    with pytest.raises(DownloadFailed) as refused:
        check_image_url(url, DEFAULT_IMAGE_HOSTS)
    assert refused.value.reason == reason
    check_image_url("https://i.pinimg.com/originals/ab/cd/ef/x.gif", DEFAULT_IMAGE_HOSTS)  # no error


def test_redirects_are_followed_only_within_the_allowlist(server):
    fetcher = Fetcher(SETTINGS)
    for path in ("/to-img", "/to-img-absolute"):
        fetched = fetcher.get(base(server) + path)
        assert fetched.status == 200 and fetched.body == PNG and fetched.url == base(server) + "/img.png"
    for path, reason in (("/away", "refused_redirect"), ("/to-localhost", "refused_redirect"),
                         ("/to-file", "refused_redirect"), ("/loop", "too_many_redirects")):
        server.paths.clear()
        with pytest.raises(DownloadFailed) as refused:
            fetcher.get(base(server) + path)
        assert refused.value.reason == reason, path
        # A refused redirect is never requested: every request went to the allowed server itself.
        assert all(p in ("/away", "/to-localhost", "/to-file", "/loop") for p in server.paths)


def test_a_host_not_on_the_list_is_never_contacted(server):
    server.paths.clear()
    with pytest.raises(DownloadFailed) as refused:
        Fetcher(DownloadSettings(requests_per_second=0)).get(base(server) + "/img.png")  # only pinimg.com allowed
    assert refused.value.reason == "refused_host" and server.paths == []


def test_refusals_and_video_pins_are_counted_by_reason(server, tmp_path):
    url = base(server)
    pins = [
        Pin("1", "p1", f"{url}/img.png"),
        Pin("2", "p2", f"{url}/away"),
        Pin("3", "p3", "file:///etc/passwd"),
        Pin("4", "p4", "https://images.example.org/a.jpg"),
        Pin("5", "p5", f"{url}/img.png", media="video"),  # the scraper saw a <video>: never fetched
        Pin("6", "p6", f"{url}/clip.mp4"),  # answers video/mp4
    ]
    report = download_pins(pins, "brand", tmp_path, SETTINGS)
    assert report.files_downloaded == 1 and report.manifest_rows == 1
    assert dict(report.failures) == {"refused_redirect": 1, "refused_scheme": 1, "refused_host": 1, "video_pin": 2}


def test_a_video_body_is_a_video_pin_not_a_broken_image():
    with pytest.raises(DownloadFailed) as failure:
        validate_image(b"\x00\x00\x00\x18ftypmp42", "video/mp4", "u", DownloadSettings())
    assert failure.value.reason == "video_pin"

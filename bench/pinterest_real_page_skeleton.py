"""Reduce a saved real Pinterest board page to its structure: the committed test fixture.

The saved page (fashion_pipeline_tests/fixtures/real/pinterest/PROVENANCE.md) sits in a repository
without a licence, so it is not committed. What is committed is its skeleton: every element in
place (tag, nesting, order, ``data-test-id`` and ``role``), with no text, no class names, no
scripts, styles or icons, and every pin id and image hash replaced by a stand-in derived from it,
keeping each URL's size folder, extension and ``srcset`` descriptor. That is what the scraper reads
(structure, test ids, ``/pin/<id>/`` links, ``srcset``s), none of the page's content.

    python bench/pinterest_real_page_skeleton.py images.html fashion_pipeline_tests/fixtures/real/pinterest/board_skeleton_ru.html
"""
from __future__ import annotations

import argparse
import hashlib
import re
from html import escape
from html.parser import HTMLParser
from pathlib import Path

DROPPED = {"script", "style", "svg", "path", "meta", "link", "noscript", "title", "head", "iframe"}
VOID = {"img", "br", "hr", "input", "source", "meta", "link", "area", "base", "col", "embed", "wbr", "track"}
KEPT_ATTRIBUTES = ("data-test-id", "role", "lang")
_HEX = re.compile(r"[0-9a-f]{32}")


def stand_in(value: str, width: int) -> str:
    """A stable replacement for an id or a hash: same length class, no trace of the original."""
    digest = hashlib.sha256(f"skeleton|{value}".encode()).hexdigest()
    return digest[:width] if not value.isdigit() else str(int(digest, 16))[:width]


def rewrite_image_url(url: str) -> str:
    """``https://i.pinimg.com/736x/ab/cd/ef/<hex>.gif`` -> the same with a stand-in hex (and folders)."""
    match = _HEX.search(url)
    if not match:
        return url
    new = stand_in(match.group(0), 32)
    url = url.replace(match.group(0), new)
    return re.sub(r"/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{2}/", f"/{new[0:2]}/{new[2:4]}/{new[4:6]}/", url)


class Skeleton(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0  # depth inside a dropped element

    def handle_starttag(self, tag, attrs):
        if self._skip or tag in DROPPED:
            if tag not in VOID:
                self._skip += 1
            return
        attrs = dict(attrs)
        kept = [(name, attrs[name]) for name in KEPT_ATTRIBUTES if attrs.get(name)]
        href = attrs.get("href") or ""
        pin = re.fullmatch(r"/pin/(\d+)/", href)
        if tag == "a" and pin:
            kept.append(("href", f"/pin/{stand_in(pin.group(1), len(pin.group(1)))}/"))
        if tag == "img":
            for name in ("src", "srcset"):
                if attrs.get(name):
                    kept.append((name, ", ".join(rewrite_image_url(item.strip()) for item in attrs[name].split(","))))
            kept.append(("alt", ""))
        rendered = "".join(f' {name}="{escape(value, quote=True)}"' for name, value in kept)
        self.out.append(f"<{tag}{rendered}>")

    def handle_endtag(self, tag):
        if self._skip:
            if tag in DROPPED or tag not in VOID:
                self._skip -= 1
            return
        if tag not in VOID:
            self.out.append(f"</{tag}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and not self._skip:
            self.out.append(f"</{tag}>")


def skeleton(html: str) -> str:
    parser = Skeleton()
    parser.feed(html)
    body = "".join(parser.out)
    body = re.sub(r"^.*?<body>", "", body, flags=re.S).replace("</body>", "").replace("</html>", "")
    return ('<!DOCTYPE html>\n<html lang="ru"><head><meta charset="utf-8"><title>skeleton</title></head>\n'
            f"<body>{body}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the structure-only skeleton of a saved Pinterest board page.")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    text = skeleton(args.page.read_text(encoding="utf-8"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.page} ({args.page.stat().st_size} bytes) -> {args.out} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

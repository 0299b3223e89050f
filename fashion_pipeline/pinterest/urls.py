"""Choose the original-resolution URL of a pin's image, with the fallbacks to try in order.

Pinterest serves every image under size folders (``/236x/``, ``/474x/``, ``/736x/``) and the
upload itself under ``/originals/``. A pin's ``<img>`` only names the sized copies, so:

1. rewrite the largest sized URL to ``/originals/`` and try it with its own extension, then the
   other usual ones (an original is often a ``.png`` or ``.webp`` while its thumbnails are ``.jpg``);
   a 404 means "wrong extension, try the next", a 403 means "this pin has no original";
2. then fall back to the sized copies, largest first.

    python -m fashion_pipeline.pinterest.urls "https://i.pinimg.com/236x/ab/cd/ef/abcdef.jpg"
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

# Largest first: the order in which sized copies are tried when there is no original.
SIZE_FOLDERS = ("736x", "474x", "236x")
EXTENSIONS = (".jpg", ".png", ".webp")
_SIZE_SEGMENT = re.compile(r"/(\d+)x(\d*)/")
_EXTENSION = re.compile(r"\.(jpe?g|png|webp|gif)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImageCandidates:
    """URLs to try for one pin: originals (by extension), then sized copies (largest first)."""

    originals: list[str] = field(default_factory=list)
    sized: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.originals, *self.sized]


def size_width(url: str) -> int:
    """Width of a pinimg size folder in ``url`` (``/474x/`` -> 474); 0 when there is none."""
    match = _SIZE_SEGMENT.search(url)
    return int(match.group(1)) if match else 0


def parse_srcset(srcset: str | None) -> list[str]:
    """The URLs of a ``srcset`` attribute (``"a.jpg 1x, b.jpg 2x"``), in the order given."""
    urls = []
    for item in (srcset or "").split(","):
        parts = item.strip().split()
        if parts:
            urls.append(parts[0])
    return urls


def to_original(url: str) -> str | None:
    """``.../736x/ab/cd/x.jpg`` -> ``.../originals/ab/cd/x.jpg``; None when ``url`` has no size folder."""
    if not _SIZE_SEGMENT.search(url):
        return None
    return _SIZE_SEGMENT.sub("/originals/", url, count=1)


def with_extension(url: str, extension: str) -> str:
    path, sep, query = url.partition("?")
    if _EXTENSION.search(path):
        path = _EXTENSION.sub(extension, path)
    else:
        path += extension
    return path + sep + query


def _extension_order(url: str) -> list[str]:
    """The URL's own extension first (``.jpeg`` counts as ``.jpg``), then the others."""
    match = _EXTENSION.search(url.partition("?")[0])
    own = "." + match.group(1).lower().replace("jpeg", "jpg") if match else None
    ordered = [own] if own in EXTENSIONS else []
    return ordered + [ext for ext in EXTENSIONS if ext != own]


def sized_urls(src: str | None, srcset: str | None) -> list[str]:
    """Every distinct sized URL known for a pin (``src``, ``srcset``, and the standard size
    folders derived from them), largest first."""
    seen = [url for url in [*parse_srcset(srcset), src or ""] if url and size_width(url)]
    if seen:
        base = max(seen, key=size_width)
        seen += [_SIZE_SEGMENT.sub(f"/{folder}/", base, count=1) for folder in SIZE_FOLDERS]
    unique = list(dict.fromkeys(seen))
    return sorted(unique, key=size_width, reverse=True)


def image_candidates(src: str | None, srcset: str | None = None) -> ImageCandidates:
    """All URLs worth trying for one pin's image, best first."""
    sized = sized_urls(src, srcset)
    if not sized:
        # Not a pinimg-style URL (no size folder): the src is all there is.
        return ImageCandidates(originals=[], sized=[src] if src else [])
    original = to_original(sized[0])
    originals = [with_extension(original, ext) for ext in _extension_order(original)]
    return ImageCandidates(originals=originals, sized=sized)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the URLs tried for a pin image, in order.")
    parser.add_argument("src", help="the <img> src")
    parser.add_argument("--srcset", default="", help="the <img> srcset attribute")
    args = parser.parse_args(argv)
    candidates = image_candidates(args.src, args.srcset)
    for url in candidates.originals:
        print("original ", url)
    for url in candidates.sized:
        print("sized    ", url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Choose the original-resolution URL of a pin's image, with the fallbacks to try in order.

Pinterest serves every image under size folders (``/236x/``, ``/474x/``, ``/736x/``) and the
upload itself under ``/originals/``. A board page's ``<img>`` names the original itself: its
``srcset`` reads ``236x 1x, 474x 2x, 736x 3x, originals 4x`` (seen on a saved real board page,
see ``fashion_pipeline_tests/fixtures/real/pinterest/PROVENANCE.md``), and the original's URL
carries its real extension (``.gif`` for GIFs, ``.png``, ...; the sized copies are ``.jpg``). The
pin's JSON (``images.orig``) names the same URL. So:

1. the original the ``srcset`` names, when it names one: exactly that URL, no guessing;
2. only when the page names none, rewrite the largest sized URL to ``/originals/`` and try it with
   its own extension, then the other usual ones; a 404 means "wrong extension, try the next", a
   403 means "this pin has no original";
3. then fall back to the sized copies, largest first (a named original that answers 403 or 404
   ends here too).

    python -m fashion_pipeline.pinterest.urls "https://i.pinimg.com/236x/ab/cd/ef/abcdef.jpg"
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

# Largest first: the order in which sized copies are tried when there is no original.
SIZE_FOLDERS = ("736x", "474x", "236x")
# Guessed only when the page names no original; real boards have GIF originals too (the saved board page
# in fixtures/real/pinterest has 4 of 18), so .gif is guessed last.
EXTENSIONS = (".jpg", ".png", ".webp", ".gif")
_SIZE_SEGMENT = re.compile(r"/(\d+)x(\d*)/")
_EXTENSION = re.compile(r"\.(jpe?g|png|webp|gif)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImageCandidates:
    """URLs to try for one pin: originals (by extension), then sized copies (largest first)."""

    originals: list[str] = field(default_factory=list)
    sized: list[str] = field(default_factory=list)
    original_from: str = "none"  # "srcset" (the page names it) | "guessed" | "none"

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


def named_original(srcset: str | None) -> str | None:
    """The ``/originals/`` URL a ``srcset`` lists (Pinterest's ``4x`` entry), if any."""
    for url in parse_srcset(srcset):
        if "/originals/" in url.partition("?")[0]:
            return url
    return None


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
    named = named_original(srcset)
    if named:
        return ImageCandidates(originals=[named], sized=sized, original_from="srcset")
    if not sized:
        # Not a pinimg-style URL (no size folder): the src is all there is.
        return ImageCandidates(originals=[], sized=[src] if src else [])
    original = to_original(sized[0])
    originals = [with_extension(original, ext) for ext in _extension_order(original)]
    return ImageCandidates(originals=originals, sized=sized, original_from="guessed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the URLs tried for a pin image, in order.")
    parser.add_argument("src", help="the <img> src")
    parser.add_argument("--srcset", default="", help="the <img> srcset attribute")
    args = parser.parse_args(argv)
    candidates = image_candidates(args.src, args.srcset)
    print("original from", candidates.original_from)
    for url in candidates.originals:
        print("original ", url)
    for url in candidates.sized:
        print("sized    ", url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

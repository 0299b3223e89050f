"""What the embedded Pinterest-like site serves: boards, pins, image specs, and the planted duplicates.

Everything here is a pure function of ``(brands, pins_per_board, seed, mix)``: no I/O, no rendering.
Each board's own pins depend only on its brand and the seed, so adding a brand leaves the others
unchanged; the cross-brand duplicates are then planted over the whole set.

Image URLs mimic pinimg: ``/i/<size>/ab/cd/ef/<hex>.<ext>``; the hex names one image's content,
so a "repin" shares its source's hex (and URL) while a re-upload gets its own hex.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import threading
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Mapping

import numpy as np

# Bump when rendering changes: the hex (and so the on-disk cache key) changes with it.
RENDER_VERSION = 3  # 3: runway looks drawn with figures.RUNWAY_HARD (issue 23)

THESIS_BRANDS = (
    "Balenciaga", "Blumarine", "Burberry", "Chanel", "Chloé", "Dior", "Elisabetta Franchi",
    "Fendi", "GCDS", "Givenchy", "Gucci", "Hermès", "Louis Vuitton", "Max Mara", "Michael Kors",
    "Missoni", "Prada", "Valentino", "Versace", "Yves Saint Laurent",
)

RENDITIONS = {"236x": 236, "474x": 474, "736x": 736}
ORIGINAL_EXTENSIONS = ("jpg", "png", "webp", "gif")
# The heading over the recommendations that follow a board, and the page's language. The English
# phrasings are the ones public scrapers stop at (see fashion_pipeline_tests/fixtures/real/pinterest/
# PROVENANCE.md); the Russian one is our translation, as on a ru-locale page. Each board draws one.
RECOMMENDATION_HEADINGS = (
    ("en", "More ideas"),
    ("en", "More ideas for this board"),
    ("en", "Find some ideas for this board"),
    ("en", "More like this"),
    ("ru", "Другие идеи для этой доски"),
)
DISTRACTOR_KINDS = ("accessory", "headshot", "crowd", "backdrop")
# How a planted copy differs from its source: same URL, same bytes, or a near-duplicate.
COPY_KINDS = ("repin", "identical", "reencoded", "resized", "cropped", "bordered")
END_BOOKMARK = "-end-"
DEFAULT_USER = "runwayarchive"


@dataclass(frozen=True)
class SiteMix:
    """Proportions of the generated boards (thesis: 10,301 scraped, 9,940 after dedup, 5,328 full body)."""

    distractor_rate: float = 0.18  # accessory close-ups, head shots, crowds, empty backdrops
    separates_rate: float = 0.30  # share of looks that are separates (upper + lower) instead of one full garment
    duplicate_rate: float = 0.05  # share of each board's pins copied from another brand's board
    png_rate: float = 0.08  # originals stored as .png (the thumbnail's .jpg original answers 404)
    webp_rate: float = 0.06  # originals stored as .webp
    missing_original_rate: float = 0.06  # /originals/ answers 403; the largest rendition is 736x
    # Drawn from a hash of the image, not from the board's random stream, so turning these on leaves
    # every other pin as it was: GIF originals (their renditions are JPEG stills, as on pinimg) and
    # video pins (a <video> in the pin; off by default: the demo has none).
    gif_rate: float = 0.05
    video_rate: float = 0.0


@dataclass(frozen=True)
class ImageSpec:
    """The content behind one image hex: how to draw it, or how to derive it from another image."""

    hex: str
    content: str  # "look" | "distractor"
    outfit: str | None  # "full" | "separates" for looks
    distractor_kind: str | None
    size: tuple[int, int]  # the original's (width, height)
    original_ext: str
    has_original: bool
    render_seed: int
    copy_kind: str = "original"  # or one of COPY_KINDS except "repin" (a repin reuses the source's spec)
    is_video: bool = False  # a video pin: the <img> is its cover, the pin holds a <video>
    source_hex: str | None = None
    transform: tuple = ()  # crop box, resize size, (border px, grey level) or JPEG quality

    def rendition_size(self, size_name: str) -> tuple[int, int]:
        """Pinterest scales to the rendition width but never upscales."""
        width, height = self.size
        target = min(RENDITIONS[size_name], width)
        return target, max(1, round(height * target / width))

    def path(self, size_name: str) -> str:
        ext = self.original_ext if size_name == "originals" else "jpg"
        return f"/i/{size_name}/{self.hex[0:2]}/{self.hex[2:4]}/{self.hex[4:6]}/{self.hex}.{ext}"


@dataclass(frozen=True)
class Pin:
    pin_id: str
    title: str
    image: ImageSpec
    look_id: str  # equal for every pin that shows the same look (planted duplicates share it)
    feed: str  # "board" | "more_ideas" | "endless"
    board: str | None = None
    brand: str | None = None
    position: int = -1
    copy_of: str | None = None
    copy_kind: str = "original"


@dataclass
class Board:
    brand: str
    slug: str
    path: str  # /<user>/<slug>-runway/
    pins: list[Pin] = field(default_factory=list)


def brand_slug(brand: str) -> str:
    """'Chloé' -> 'chloe', 'Yves Saint Laurent' -> 'yves-saint-laurent'."""
    folded = _fold(brand)
    slug = "".join(ch if ch.isalnum() else "-" for ch in folded)
    slug = "-".join(part for part in slug.split("-") if part)
    if not slug:
        raise ValueError(f"brand name {brand!r} has no letters or digits to make a slug from")
    return slug


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().strip()


def stable_int(*parts: object) -> int:
    """A 63-bit integer hash that, unlike ``hash()``, is the same in every process."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def stable_hex(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def pin_id_for(*parts: object) -> str:
    """An 18-digit numeric id like Pinterest's."""
    return str(10**17 + stable_int("pin", *parts) % (9 * 10**17))


def encode_bookmark(phase: str, offset: int, endless: bool = False) -> str:
    raw = f"{phase}:{offset}:{'e' if endless else ''}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_bookmark(bookmark: str) -> tuple[str, int, bool]:
    """Inverse of ``encode_bookmark``; a clear ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(bookmark + "=" * (-len(bookmark) % 4)).decode()
        phase, offset, flag = raw.split(":")
        if phase not in ("board", "more") or int(offset) < 0:
            raise ValueError
        return phase, int(offset), flag == "e"
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"invalid bookmark {bookmark!r}") from None


class SiteCatalog:
    """Boards and pins of the embedded site, plus the lazily grown More-ideas and endless feeds."""

    def __init__(
        self,
        brands: Iterable[str],
        pins_per_board: int | Mapping[str, int] = 30,
        seed: int = 0,
        mix: SiteMix = SiteMix(),
        user: str = DEFAULT_USER,
    ):
        self.brands = list(dict.fromkeys(brands))
        if not self.brands:
            raise ValueError("the embedded site needs at least one brand")
        self.seed = seed
        self.mix = mix
        self.user = user
        self.boards: dict[str, Board] = {}
        for brand in self.brands:
            board = self._make_board(brand, _pin_count(pins_per_board, brand))
            if board.slug in self.boards:
                raise ValueError(f"brands {self.boards[board.slug].brand!r} and {brand!r} share the slug {board.slug!r}")
            self.boards[board.slug] = board
        self._plant_duplicates()
        self._lock = threading.Lock()
        self._pins: dict[str, Pin] = {}
        self._images: dict[str, ImageSpec] = {}
        for board in self.boards.values():
            for pin in board.pins:
                self._register(pin)

    # ---- lookups -------------------------------------------------------------------------
    def board_for_brand(self, brand: str) -> Board:
        board = self.boards.get(brand_slug(brand))
        if board is None:
            raise KeyError(f"the embedded site has no board for brand {brand!r}; it serves {', '.join(self.brands)}")
        return board

    def recommendations_heading(self, slug: str) -> tuple[str, str]:
        """(language, heading) of the recommendations after board ``slug``: fixed per board."""
        return RECOMMENDATION_HEADINGS[stable_int("recommendations", self.seed, slug) % len(RECOMMENDATION_HEADINGS)]

    def board_for_query(self, query: str) -> Board | None:
        """'<brand> runway' (any case, accents optional) or the bare brand name finds its board."""
        wanted = " ".join(_fold(query).split())
        for board in self.boards.values():
            name = " ".join(_fold(board.brand).split())
            if wanted in (name, f"{name} runway", board.slug, f"{board.slug}-runway"):
                return board
        return None

    def pin(self, pin_id: str) -> Pin | None:
        return self._pins.get(pin_id)

    def image(self, image_hex: str) -> ImageSpec | None:
        return self._images.get(image_hex)

    # ---- feeds ---------------------------------------------------------------------------
    def feed_page(self, slug: str, bookmark: str | None, page_size: int, endless: bool = False):
        """One page of a board's feed: ``(pins, next_bookmark, phase)``.

        The board phase ends with bookmark ``-end-``; the More-ideas phase never ends. With
        ``endless`` the board phase itself never ends (a fault: no boundary ever appears).
        """
        board = self.boards[slug]
        phase, offset, endless = decode_bookmark(bookmark) if bookmark else ("board", 0, endless)
        if phase == "more":
            pins = [self._extra_pin(slug, "more_ideas", offset + i) for i in range(page_size)]
            return pins, encode_bookmark("more", offset + page_size), "more"
        own = board.pins[offset : offset + page_size]
        pins = list(own)
        if endless:
            extra_start = max(0, offset - len(board.pins))
            pins += [self._extra_pin(slug, "endless", extra_start + i) for i in range(page_size - len(own))]
            return pins, encode_bookmark("board", offset + page_size, True), "board"
        next_offset = offset + len(own)
        done = next_offset >= len(board.pins)
        return pins, (END_BOOKMARK if done else encode_bookmark("board", next_offset)), "board"

    def _extra_pin(self, slug: str, feed: str, index: int) -> Pin:
        """A pin of the More-ideas (or endless) feed: a new pin id showing another board's image.

        Reusing images, as Pinterest's related pins do, means a browser that lazily loads the
        first More-ideas thumbnails costs no extra drawing.
        """
        pin_id = pin_id_for(self.seed, feed, slug, index)
        with self._lock:
            existing = self._pins.get(pin_id)
        if existing is not None:
            return existing
        pool = self._related_pool(slug)
        shown = pool[stable_int(feed, slug, index) % len(pool)]
        label = "More ideas" if feed == "more_ideas" else f"{self.boards[slug].brand} runway"
        pin = Pin(pin_id=pin_id, title=f"{label} — {index + 1}", image=shown.image,
                  look_id=shown.look_id, feed=feed, board=None, position=index)
        with self._lock:
            return self._register(pin)

    def _related_pool(self, slug: str) -> list[Pin]:
        others = [pin for other, board in self.boards.items() if other != slug for pin in board.pins]
        return others or self.boards[slug].pins

    def _register(self, pin: Pin) -> Pin:
        self._pins.setdefault(pin.pin_id, pin)
        self._images.setdefault(pin.image.hex, pin.image)
        return self._pins[pin.pin_id]

    # ---- generation ----------------------------------------------------------------------
    def _make_board(self, brand: str, count: int) -> Board:
        slug = brand_slug(brand)
        board = Board(brand=brand, slug=slug, path=f"/{self.user}/{slug}-runway/")
        rng = np.random.default_rng([self.seed, stable_int("board", slug)])
        for position in range(count):
            image = self._random_image(rng, stable_hex(RENDER_VERSION, self.seed, slug, position))
            what = image.outfit + " look" if image.content == "look" else image.distractor_kind
            board.pins.append(Pin(
                pin_id=pin_id_for(self.seed, slug, position), title=f"{brand} runway — {what}",
                image=image, look_id=f"{slug}-{position:04d}", feed="board",
                board=slug, brand=brand, position=position,
            ))
        return board

    def _random_image(self, rng: np.random.Generator, image_hex: str) -> ImageSpec:
        mix = self.mix
        if rng.random() < mix.distractor_rate:
            content, outfit = "distractor", None
            kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
            aspect = {"accessory": 1.0, "headshot": 1.25, "crowd": 0.75, "backdrop": 0.75}[kind]
        else:
            content, kind = "look", None
            outfit = "separates" if rng.random() < mix.separates_rate else "full"
            aspect = float(rng.choice([1.25, 4 / 3, 1.5]))
        width = int(rng.integers(736, 1001))
        roll = rng.random()
        ext = "png" if roll < mix.png_rate else "webp" if roll < mix.png_rate + mix.webp_rate else "jpg"
        if ext == "jpg" and _hash_share("gif", image_hex) < mix.gif_rate:
            ext = "gif"
        return ImageSpec(
            hex=image_hex, content=content, outfit=outfit, distractor_kind=kind,
            size=(width, round(width * aspect)), original_ext=ext,
            has_original=bool(rng.random() >= mix.missing_original_rate),
            render_seed=int(rng.integers(2**62)),
            is_video=_hash_share("video", image_hex) < mix.video_rate,
        )

    def _plant_duplicates(self) -> None:
        """Replace a few pins per board with copies of looks from other brands' boards."""
        if len(self.boards) < 2:
            return
        rng = np.random.default_rng([self.seed, stable_int("duplicates", *self.boards)])
        slots = {}
        for slug, board in self.boards.items():
            count = round(len(board.pins) * self.mix.duplicate_rate)
            if self.mix.duplicate_rate > 0 and len(board.pins) >= 8:
                count = max(count, 1)
            for position in rng.choice(len(board.pins), size=min(count, len(board.pins)), replace=False):
                slots[(slug, int(position))] = True
        sources = [pin for board in self.boards.values() for pin in board.pins
                   if pin.image.content == "look" and not pin.image.is_video and (pin.board, pin.position) not in slots]
        for slug, position in slots:
            candidates = [pin for pin in sources if pin.board != slug]
            if not candidates:
                continue
            source = candidates[int(rng.integers(len(candidates)))]
            kind = COPY_KINDS[int(rng.integers(len(COPY_KINDS)))]
            slot_pin = self.boards[slug].pins[position]
            image = replace(_copy_image(source.image, kind, slot_pin.image.hex, rng), is_video=False)
            self.boards[slug].pins[position] = replace(
                slot_pin, image=image, look_id=source.look_id, copy_of=source.pin_id, copy_kind=kind,
                title=f"{slot_pin.brand} runway — {source.image.outfit} look",
            )

    # ---- ground truth --------------------------------------------------------------------
    def ground_truth(self) -> dict:
        """Every board pin with its look and copy relation; clusters of pins sharing a look."""
        pins, clusters = {}, {}
        for board in self.boards.values():
            for pin in board.pins:
                pins[pin.pin_id] = {
                    "brand": pin.brand, "board": pin.board, "position": pin.position,
                    "look_id": pin.look_id, "content": pin.image.content, "outfit": pin.image.outfit,
                    "distractor_kind": pin.image.distractor_kind, "copy_of": pin.copy_of,
                    "copy_kind": pin.copy_kind, "image_hex": pin.image.hex,
                    "original_ext": pin.image.original_ext, "has_original": pin.image.has_original,
                    "width": pin.image.size[0], "height": pin.image.size[1], "is_video": pin.image.is_video,
                }
                clusters.setdefault(pin.look_id, []).append(pin.pin_id)
        planted = [
            {"look_id": look, "pin_ids": ids, "brands": sorted({pins[i]["brand"] for i in ids}),
             "copy_kinds": sorted({pins[i]["copy_kind"] for i in ids} - {"original"})}
            for look, ids in clusters.items() if len(ids) > 1
        ]
        return {
            "seed": self.seed, "render_version": RENDER_VERSION, "mix": asdict(self.mix),
            "boards": {slug: {"brand": b.brand, "path": b.path, "pin_ids": [p.pin_id for p in b.pins],
                              "recommendations_heading": list(self.recommendations_heading(slug))}
                       for slug, b in self.boards.items()},
            "pins": pins,
            "planted_duplicates": planted,
        }


def _copy_image(source: ImageSpec, kind: str, own_hex: str, rng: np.random.Generator) -> ImageSpec:
    """The spec of a copy of ``source``: a repin is the source itself; others derive from its original."""
    if kind == "repin":
        return source
    width, height = source.size
    common = dict(hex=own_hex, copy_kind=kind, source_hex=source.hex, has_original=True, original_ext="jpg")
    if kind == "identical":
        return replace(source, **{**common, "original_ext": source.original_ext, "has_original": source.has_original})
    if kind == "reencoded":
        return replace(source, **common, transform=(int(rng.integers(45, 71)),))
    if kind == "resized":
        scale = float(rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.1, 1.3)]))
        size = (round(width * scale), round(height * scale))
        return replace(source, **{**common, "size": size}, transform=size)
    # Crops and borders stay small: near-duplicates a perceptual hash should still match.
    if kind == "cropped":
        left, top, right, bottom = (int(rng.uniform(0.015, 0.04) * d) for d in (width, height, width, height))
        box = (left, top, width - right, height - bottom)
        return replace(source, **{**common, "size": (box[2] - box[0], box[3] - box[1])}, transform=box)
    if kind == "bordered":
        border = int(rng.uniform(0.01, 0.025) * width)
        grey = int(rng.choice([0, 255, 238]))
        return replace(source, **{**common, "size": (width + 2 * border, height + 2 * border)}, transform=(border, grey))
    raise ValueError(f"unknown copy kind {kind!r}")


def _hash_share(kind: str, image_hex: str) -> float:
    """A number in [0, 1) fixed by the image: a share of images, chosen without the board's random stream."""
    return (stable_int(kind, image_hex) % 1_000_000) / 1_000_000


def _pin_count(pins_per_board: int | Mapping[str, int], brand: str) -> int:
    if isinstance(pins_per_board, Mapping):
        for key in (brand, brand_slug(brand)):
            if key in pins_per_board:
                return int(pins_per_board[key])
        raise ValueError(f"pins_per_board has no entry for brand {brand!r} (nor its slug {brand_slug(brand)!r})")
    return int(pins_per_board)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the embedded site's ground truth (boards, pins, planted duplicates) as JSON.")
    parser.add_argument("--brands", nargs="+", default=list(THESIS_BRANDS))
    parser.add_argument("--pins", type=int, default=30, help="pins per board")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", action="store_true", help="print counts instead of the full ground truth")
    args = parser.parse_args(argv)
    truth = SiteCatalog(args.brands, args.pins, args.seed).ground_truth()
    if args.summary:
        pins = truth["pins"].values()
        truth = {
            "boards": len(truth["boards"]), "pins": len(truth["pins"]),
            "full_looks": sum(p["outfit"] == "full" for p in pins),
            "separates": sum(p["outfit"] == "separates" for p in pins),
            "distractors": sum(p["content"] == "distractor" for p in pins),
            "copies": sum(p["copy_kind"] != "original" for p in pins),
            "planted_clusters": len(truth["planted_duplicates"]),
            "missing_originals": sum(not p["has_original"] for p in pins),
        }
    print(json.dumps(truth, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

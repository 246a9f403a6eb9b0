"""Drawing one synthetic anime character with PIL, for :mod:`animesion_lib.data.synthetic`.

A character is a fixed set of visual attributes (:class:`Character`); an image of it is one
:class:`Scene` (expression, background, artist style, framing, occlusion...). :func:`render`
draws the scene on a supersampled canvas in *head units* (``u`` = the head's width in pixels,
the head centre at ``(cx, cy)``), then cuts the face crop and the larger full-figure view out of
the same canvas and downsizes both, which anti-aliases the flat PIL shapes.

Only PIL and the standard library are used, so a worker process imports nothing heavy.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

# Colours by name; the names are the Danbooru colour words used in tags (`blue_hair`, ...).
HAIR_COLOURS: dict[str, RGB] = {
    "blonde": (248, 218, 118), "brown": (139, 88, 56), "black": (48, 42, 58),
    "blue": (72, 112, 222), "red": (208, 52, 50), "pink": (244, 148, 190),
    "purple": (142, 92, 202), "green": (78, 168, 98), "grey": (172, 176, 190),
    "white": (242, 242, 246), "orange": (244, 140, 52), "aqua": (86, 206, 208),
}
EYE_COLOURS: dict[str, RGB] = {
    "blue": (50, 100, 230), "red": (210, 40, 50), "green": (40, 160, 80), "purple": (140, 70, 200),
    "yellow": (235, 190, 40), "brown": (130, 80, 40), "pink": (240, 110, 170),
    "aqua": (40, 200, 200), "grey": (120, 125, 135),
}
SKIN_TONES: dict[str, RGB] = {
    "pale": (255, 236, 228), "fair": (252, 222, 198), "tan": (224, 172, 128), "dark": (150, 100, 72),
}
CLOTH_COLOURS: dict[str, RGB] = {
    "white": (240, 240, 240), "black": (50, 48, 56), "blue": (60, 100, 200), "red": (200, 50, 60),
    "green": (60, 150, 90), "pink": (240, 150, 190), "yellow": (240, 210, 80),
    "purple": (130, 80, 180),
}
BACKGROUND_COLOURS: dict[str, RGB] = {
    "white": (250, 250, 250), "grey": (190, 190, 195), "blue": (170, 200, 240),
    "pink": (250, 200, 215), "yellow": (250, 240, 180), "green": (190, 230, 190),
    "purple": (210, 190, 235), "orange": (250, 210, 160),
}
ACCENT_COLOURS: list[RGB] = [
    (220, 40, 60), (50, 90, 210), (250, 210, 60), (250, 140, 190), (245, 245, 245),
    (40, 40, 50), (60, 170, 90), (150, 90, 210),
]
OUTLINE_COLOURS: list[RGB] = [(30, 24, 36), (64, 38, 30), (46, 34, 72), (18, 18, 18)]


@dataclass(frozen=True)
class Character:
    """What stays the same across every image of one character."""

    gender: str  # "girl" | "boy"
    hair_colour: str
    hair_style: str  # short_hair, long_hair, twintails, ponytail, bob_cut, drill_hair, side_ponytail
    bangs: str  # blunt_bangs, swept_bangs, parted_bangs
    eye_colour: str
    skin: str
    accessories: tuple[str, ...]
    outfit: str  # serafuku, dress, hoodie, kimono, jacket, maid
    outfit_colour: str
    mark: str  # "none" or a small signature mark (mole_under_eye, facial_mark, ...)
    ahoge: bool
    accent: int  # index into ACCENT_COLOURS (bows, hats, hair ties)


@dataclass(frozen=True)
class ArtistStyle:
    """How one (invented) artist draws: line weight, palette shift, saturation, eye size."""

    line: float
    outline: RGB
    hue_shift: float
    saturation: float
    brightness: float
    eye_scale: float


@dataclass
class Scene:
    """Everything that varies from one image of a character to the next."""

    character: Character
    artist: ArtistStyle
    outfit: str
    outfit_colour: str
    eyes: str = "open"  # open | closed
    mouth: str = "neutral"  # neutral | smile | open_smile | open
    blush: bool = False
    background: str = "plain"  # plain | gradient | stripes | dots | checks | day | night | indoors
    background_colours: tuple[RGB, RGB] = ((250, 250, 250), (250, 250, 250))
    background_extra: bool = False  # a tree outdoors
    occluder: str = "none"  # none | hand | bubble | object
    occluder_xy: tuple[float, float, float] = (0.0, 0.0, 0.2)  # centre and radius, head units
    occluder_colour: RGB = (200, 60, 60)
    rotation: float = 0.0
    flip: bool = False
    face_box: tuple[float, float, float] = (0.0, 0.05, 1.45)  # centre x, y and side, head units
    full_box: tuple[float, float, float] = (0.0, 0.7, 2.6)
    pattern_seed: list[float] = field(default_factory=lambda: [0.5] * 16)


def _clamp(v: float) -> int:
    return 0 if v < 0 else 255 if v > 255 else int(v + 0.5)


def stylise(rgb: RGB, style: ArtistStyle, hue: float = 1.0) -> RGB:
    """Apply the artist's palette: hue shift (times ``hue``), saturation, brightness (HLS)."""
    h, l, s = colorsys.rgb_to_hls(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)
    h = (h + style.hue_shift * hue) % 1.0
    s = min(1.0, s * style.saturation)
    l = min(1.0, l * style.brightness)
    r, g, b = colorsys.hls_to_rgb(h, l, s)
    return (_clamp(r * 255), _clamp(g * 255), _clamp(b * 255))


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (_clamp(a[0] + (b[0] - a[0]) * t), _clamp(a[1] + (b[1] - a[1]) * t),
            _clamp(a[2] + (b[2] - a[2]) * t))


def shade(rgb: RGB, t: float) -> RGB:
    """Darker (t < 0) or lighter (t > 0) version of a colour."""
    return mix(rgb, (0, 0, 0) if t < 0 else (255, 255, 255), abs(t))


# Canvas geometry in head units: the head centre sits at (CANVAS_CX, CANVAS_CY); the canvas is
# big enough that every crop stays inside it after a rotation about the head centre.
CANVAS_W, CANVAS_H, CANVAS_CX, CANVAS_CY = 4.0, 4.4, 2.0, 1.2
_GRADIENTS: dict[tuple[int, int], Image.Image] = {}


def _gradient(w: int, h: int) -> Image.Image:
    """A top-to-bottom 0..255 ramp of the canvas size (cached: every canvas has the same size)."""
    if (w, h) not in _GRADIENTS:
        _GRADIENTS[(w, h)] = Image.linear_gradient("L").resize((w, h))
    return _GRADIENTS[(w, h)]


class _Pen:
    """ImageDraw in head units: ``pt(x, y)`` maps head coordinates to canvas pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, u: float, lw: int,
                 outline: RGB):
        self.d, self.cx, self.cy, self.u, self.lw, self.outline = draw, cx, cy, u, lw, outline

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + x * self.u, self.cy + y * self.u)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [self.cx + x0 * self.u, self.cy + y0 * self.u, self.cx + x1 * self.u,
                self.cy + y1 * self.u]

    def poly(self, points, fill, outline=True, width: int | None = None) -> None:
        xy = [self.pt(x, y) for x, y in points]
        self.d.polygon(xy, fill=fill, outline=self.outline if outline else None,
                       width=self.lw if width is None else width)

    def ellipse(self, x0, y0, x1, y1, fill, outline=True, width: int | None = None) -> None:
        self.d.ellipse(self.box(x0, y0, x1, y1), fill=fill,
                       outline=self.outline if outline else None,
                       width=self.lw if width is None else width)

    def circle(self, x, y, r, fill, outline=True, width: int | None = None) -> None:
        self.ellipse(x - r, y - r, x + r, y + r, fill, outline, width)

    def line(self, points, fill=None, width: int | None = None) -> None:
        self.d.line([self.pt(x, y) for x, y in points], fill=fill or self.outline,
                    width=self.lw if width is None else width, joint="curve")

    def arc(self, x0, y0, x1, y1, start, end, fill=None, width: int | None = None) -> None:
        self.d.arc(self.box(x0, y0, x1, y1), start, end, fill=fill or self.outline,
                   width=self.lw if width is None else width)


# --------------------------------------------------------------------------- backgrounds


def _background(scene: Scene, w: int, h: int, rng_vals: list[float]) -> Image.Image:
    c1, c2 = scene.background_colours
    kind = scene.background
    if kind in ("gradient", "day", "night", "indoors"):
        img = Image.composite(Image.new("RGB", (w, h), c2), Image.new("RGB", (w, h), c1),
                              _gradient(w, h))
    else:
        img = Image.new("RGB", (w, h), c1)
    d = ImageDraw.Draw(img)
    if kind == "stripes":
        step = max(4, w // 10)
        for x in range(-h, w, step * 2):
            d.polygon([(x, 0), (x + step, 0), (x + step + h, h), (x + h, h)], fill=c2)
    elif kind == "dots":
        step = max(6, w // 8)
        r = step // 4
        for j, y in enumerate(range(0, h + step, step)):
            off = (step // 2) * (j % 2)
            for x in range(off, w + step, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=c2)
    elif kind == "checks":
        step = max(6, w // 8)
        for j, y in enumerate(range(0, h, step)):
            for x in range((j % 2) * step, w, step * 2):
                d.rectangle([x, y, x + step - 1, y + step - 1], fill=c2)
    elif kind == "day":
        ground = int(h * (0.72 + 0.1 * rng_vals[0]))
        d.rectangle([0, ground, w, h], fill=(110, 180, 90))
        for k in range(3):
            x, y = rng_vals[1 + k] * w, (0.05 + 0.25 * rng_vals[4 + k]) * h
            for dx, dy, r in ((0, 0, 0.07), (0.06, 0.02, 0.05), (-0.06, 0.02, 0.05)):
                rr = r * w
                d.ellipse([x + dx * w - rr, y + dy * w - rr, x + dx * w + rr, y + dy * w + rr],
                          fill=(252, 252, 255))
        if scene.background_extra:  # a tree on one side
            tx = w * (0.1 if rng_vals[7] < 0.5 else 0.9)
            d.rectangle([tx - w * 0.03, ground - h * 0.25, tx + w * 0.03, ground], fill=(110, 70, 40))
            d.ellipse([tx - w * 0.16, ground - h * 0.5, tx + w * 0.16, ground - h * 0.2],
                      fill=(60, 140, 70))
    elif kind == "night":
        for k in range(16):
            x, y = rng_vals[k % 16] * w, rng_vals[(k * 7 + 3) % 16] * h * 0.7
            r = max(1, w // 120)
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 210))
        mx, my, mr = w * (0.15 + 0.7 * rng_vals[5]), h * 0.12, w * 0.06
        d.ellipse([mx - mr, my - mr, mx + mr, my + mr], fill=(250, 240, 190))
    elif kind == "indoors":
        wx = w * (0.05 + 0.5 * rng_vals[0])
        ww, wh = w * 0.4, h * 0.3
        d.rectangle([wx, h * 0.1, wx + ww, h * 0.1 + wh], fill=(180, 220, 250),
                    outline=(120, 90, 60), width=max(2, w // 60))
        d.line([(wx + ww / 2, h * 0.1), (wx + ww / 2, h * 0.1 + wh)], fill=(120, 90, 60),
               width=max(2, w // 80))
        d.rectangle([0, h * 0.8, w, h], fill=shade(c2, -0.25))
    return img


# --------------------------------------------------------------------------- character parts


def _back_hair(p: _Pen, style: str, hair: RGB) -> None:
    p.ellipse(-0.6, -0.74, 0.6, 0.4, hair)
    if style == "long_hair":
        p.poly([(-0.6, -0.3), (0.6, -0.3), (0.72, 1.45), (0.45, 1.6), (0.2, 1.5), (0.0, 1.62),
                (-0.2, 1.5), (-0.45, 1.6), (-0.72, 1.45)], hair)
    elif style == "bob_cut":
        p.poly([(-0.62, -0.3), (0.62, -0.3), (0.68, 0.55), (0.4, 0.5), (0.0, 0.58),
                (-0.4, 0.5), (-0.68, 0.55)], hair)
    elif style == "twintails":
        for s in (-1, 1):
            p.poly([(s * 0.42, -0.5), (s * 0.66, -0.56), (s * 0.98, 0.1), (s * 1.02, 0.9),
                    (s * 0.86, 1.45), (s * 0.8, 0.8), (s * 0.62, 0.1), (s * 0.5, -0.25)], hair)
    elif style == "ponytail":
        p.poly([(0.15, -0.62), (0.5, -0.78), (0.86, -0.3), (0.94, 0.5), (0.78, 1.25),
                (0.66, 0.5), (0.52, -0.1)], hair)
    elif style == "side_ponytail":
        p.poly([(-0.4, -0.5), (-0.7, -0.42), (-0.98, 0.3), (-0.88, 1.1), (-0.74, 0.5),
                (-0.56, 0.0)], hair)
    elif style == "drill_hair":
        for s in (-1, 1):
            for k in range(4):
                r = 0.19 - 0.03 * k
                p.circle(s * 0.66, 0.05 + 0.28 * k, r, hair)


def _hair_ties(p: _Pen, style: str, accent: RGB) -> None:
    if style == "twintails":
        for s in (-1, 1):
            p.circle(s * 0.56, -0.46, 0.06, accent)
    elif style == "ponytail":
        p.circle(0.52, -0.66, 0.06, accent)
    elif style == "side_ponytail":
        p.circle(-0.58, -0.44, 0.06, accent)


def _body(p: _Pen, outfit: str, cloth: RGB, skin: RGB, accent: RGB) -> None:
    # arms, then torso, then the outfit's details, then the neck over the collar line
    for s in (-1, 1):
        p.poly([(s * 0.72, 0.95), (s * 0.96, 1.2), (s * 1.0, 2.25), (s * 0.78, 2.25),
                (s * 0.72, 1.4)], cloth)
        p.circle(s * 0.89, 2.33, 0.1, skin)
    torso = [(-0.3, 0.74), (0.3, 0.74), (0.74, 0.94), (0.8, 1.3), (0.62, 3.3), (-0.62, 3.3),
             (-0.8, 1.3), (-0.74, 0.94)]
    p.poly(torso, cloth)
    p.poly([(-0.13, 0.42), (0.13, 0.42), (0.13, 0.82), (0.0, 0.9), (-0.13, 0.82)], skin)
    dark = shade(cloth, -0.35)
    if outfit == "serafuku":
        collar = (40, 50, 110) if sum(cloth) > 450 else (245, 245, 245)
        p.poly([(-0.3, 0.74), (0.0, 1.2), (0.3, 0.74), (0.72, 0.95), (0.48, 1.22), (0.0, 1.34),
                (-0.48, 1.22), (-0.72, 0.95)], collar)
        p.poly([(-0.14, 1.16), (0.14, 1.16), (0.0, 1.5)], (210, 40, 50))
    elif outfit == "dress":
        p.poly([(-0.66, 1.75), (0.66, 1.75), (0.86, 3.3), (-0.86, 3.3)], cloth)
        p.line([(-0.66, 1.75), (0.66, 1.75)], fill=dark, width=p.lw * 2)
        p.poly([(-0.28, 0.74), (0.28, 0.74), (0.0, 0.98)], (250, 250, 250))
    elif outfit == "hoodie":
        p.poly([(-0.5, 0.8), (-0.3, 0.72), (0.3, 0.72), (0.5, 0.8), (0.3, 1.0), (-0.3, 1.0)], dark)
        p.line([(-0.1, 0.98), (-0.12, 1.4)], fill=(250, 250, 250))
        p.line([(0.1, 0.98), (0.12, 1.4)], fill=(250, 250, 250))
        p.poly([(-0.42, 2.0), (0.42, 2.0), (0.36, 2.4), (-0.36, 2.4)], dark)
    elif outfit == "kimono":
        p.line([(-0.3, 0.74), (0.2, 1.7)], width=p.lw * 2)
        p.line([(0.3, 0.74), (0.02, 1.3)], width=p.lw * 2)
        p.poly([(-0.7, 1.65), (0.7, 1.65), (0.68, 1.95), (-0.68, 1.95)], accent)
    elif outfit == "jacket":
        p.poly([(-0.3, 0.74), (0.3, 0.74), (0.0, 1.45)], (250, 250, 250))
        p.poly([(-0.06, 0.8), (0.06, 0.8), (0.08, 1.3), (0.0, 1.4), (-0.08, 1.3)], accent)
        for s in (-1, 1):
            p.poly([(s * 0.3, 0.74), (s * 0.42, 0.9), (s * 0.2, 1.3), (s * 0.05, 1.5)], dark)
    elif outfit == "maid":
        p.poly([(-0.42, 1.15), (0.42, 1.15), (0.6, 3.3), (-0.6, 3.3)], (250, 250, 250))
        p.poly([(-0.3, 0.74), (0.3, 0.74), (0.0, 0.96)], (250, 250, 250))


def _face(p: _Pen, skin: RGB) -> None:
    for s in (-1, 1):  # ears behind the face
        p.ellipse(s * 0.5 - 0.07, -0.04, s * 0.5 + 0.07, 0.2, skin)
    top = [(0.5 * math.cos(a), -0.1 + 0.55 * math.sin(a))
           for a in (math.pi * (1 + k / 10) for k in range(11))]
    jaw = [(0.49, 0.12), (0.43, 0.3), (0.27, 0.47), (0.0, 0.56)]
    pts = top + jaw + [(-x, y) for x, y in reversed(jaw[:-1])]
    p.poly(pts, skin)


def _eyes(p: _Pen, scene: Scene, eye: RGB) -> None:
    ch, st = scene.character, scene.artist
    k = st.eye_scale * (0.85 if ch.gender == "boy" else 1.0)
    for s in (-1, 1):
        ex, ey = s * 0.21, 0.12
        ew, eh = 0.12 * k, 0.14 * k
        if scene.eyes == "closed":
            p.arc(ex - ew, ey - eh * 0.6, ex + ew, ey + eh * 1.1, 200, 340, width=p.lw * 2)
            continue
        p.ellipse(ex - ew, ey - eh, ex + ew, ey + eh, (252, 252, 252), outline=False)
        iw = 0.09 * k
        p.ellipse(ex - iw, ey - eh * 0.85, ex + iw, ey + eh, eye, outline=False)
        p.ellipse(ex - iw * 0.7, ey + eh * 0.1, ex + iw * 0.7, ey + eh * 0.9, shade(eye, 0.35),
                  outline=False)
        p.ellipse(ex - iw * 0.45, ey - eh * 0.4, ex + iw * 0.45, ey + eh * 0.35, shade(eye, -0.55),
                  outline=False)
        p.circle(ex - s * iw * 0.35, ey - eh * 0.45, 0.03 * k, (255, 255, 255), outline=False)
        # thick upper lash line, flicked outwards
        p.poly([(ex - s * (ew + 0.01), ey - eh * 0.55), (ex, ey - eh * 1.12),
                (ex + s * (ew + 0.04), ey - eh * 0.75), (ex + s * (ew + 0.03), ey - eh * 0.45),
                (ex, ey - eh * 0.8)], p.outline, outline=False)
        p.line([(ex - s * ew * 0.5, ey + eh * 1.05), (ex + s * ew * 0.6, ey + eh * 0.95)])


def _mouth(p: _Pen, scene: Scene, skin: RGB) -> None:
    if scene.mouth == "smile":
        p.arc(-0.08, 0.32, 0.08, 0.44, 25, 155)
    elif scene.mouth == "open_smile":
        p.d.chord(p.box(-0.08, 0.32, 0.08, 0.5), 0, 180, fill=(170, 40, 50), outline=p.outline,
                  width=p.lw)
        p.ellipse(-0.04, 0.43, 0.04, 0.48, (240, 130, 140), outline=False)
    elif scene.mouth == "open":
        p.ellipse(-0.045, 0.37, 0.045, 0.46, (170, 40, 50))
    else:
        p.line([(-0.045, 0.41), (0.045, 0.41)])
    if scene.blush:
        for s in (-1, 1):
            p.ellipse(s * 0.3 - 0.09, 0.27, s * 0.3 + 0.09, 0.34, mix(skin, (250, 110, 140), 0.45),
                      outline=False)
    p.line([(0.0, 0.29), (0.015, 0.31)])  # nose


def _mark(p: _Pen, mark: str, accent: RGB) -> None:
    if mark == "mole_under_eye":
        p.circle(0.3, 0.31, 0.022, p.outline, outline=False)
    elif mark == "facial_mark":
        pts = []
        for k in range(10):
            r = 0.055 if k % 2 == 0 else 0.024
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((-0.3 + r * math.cos(a), 0.3 + r * math.sin(a)))
        p.poly(pts, accent, outline=False)
    elif mark == "bandaid_on_face":
        p.poly([(0.2, 0.26), (0.36, 0.22), (0.38, 0.29), (0.22, 0.33)], (236, 200, 160))
    elif mark == "scar_on_face":
        p.line([(-0.36, 0.16), (-0.22, 0.36)], fill=(190, 70, 70), width=p.lw * 2)
    elif mark == "whisker_markings":
        for s in (-1, 1):
            for k in range(3):
                p.line([(s * 0.28, 0.26 + 0.04 * k), (s * 0.42, 0.24 + 0.06 * k)])
    elif mark == "fang":
        p.poly([(0.02, 0.42), (0.07, 0.42), (0.045, 0.48)], (255, 255, 255))


def _front_hair(p: _Pen, ch: Character, hair: RGB) -> None:
    p.d.chord(p.box(-0.58, -0.76, 0.58, 0.5), 180, 360, fill=hair, outline=p.outline, width=p.lw)
    if ch.bangs == "blunt_bangs":
        pts = [(-0.55, -0.14)]
        for k in range(8):
            x = -0.5 + k * 1.0 / 7
            pts.append((x, -0.02 if k % 2 == 0 else -0.09))
        pts += [(0.55, -0.14), (0.5, -0.4), (-0.5, -0.4)]
        p.poly(pts, hair)
    elif ch.bangs == "swept_bangs":
        for k in range(5):
            x0 = -0.55 + k * 0.22
            tip = 0.02 - 0.05 * (k % 2) - 0.03 * k
            p.poly([(x0, -0.4), (x0 + 0.25, -0.4), (x0 + 0.3, tip)], hair)
    else:  # parted_bangs: two curtains leaving the forehead showing in the middle
        for s in (-1, 1):
            p.poly([(s * 0.02, -0.55), (s * 0.55, -0.35), (s * 0.52, 0.05), (s * 0.38, -0.08),
                    (s * 0.28, 0.02), (s * 0.12, -0.18)], hair)
    if ch.hair_style != "short_hair" or ch.gender == "girl":  # sidelocks frame the face
        low = 0.75 if ch.hair_style in ("long_hair", "twintails", "drill_hair") else 0.42
        for s in (-1, 1):
            p.poly([(s * 0.44, -0.3), (s * 0.58, -0.25), (s * 0.6, low), (s * 0.5, low + 0.08),
                    (s * 0.46, 0.1)], hair)
    p.arc(-0.38, -0.62, 0.38, -0.3, 205, 335, fill=shade(hair, 0.55), width=p.lw * 2)
    if ch.ahoge:
        p.line([(0.02, -0.72), (0.12, -0.92), (0.02, -1.0), (-0.04, -0.9)], fill=shade(hair, -0.3),
               width=p.lw * 2)


def _accessories(p: _Pen, acc: set[str], hair: RGB, accent: RGB) -> None:
    if "horns" in acc:
        for s in (-1, 1):
            p.poly([(s * 0.22, -0.6), (s * 0.4, -0.56), (s * 0.42, -1.0)], (235, 225, 200))
    if "cat_ears" in acc or "fox_ears" in acc:
        tip = -1.05 if "fox_ears" in acc else -0.95
        for s in (-1, 1):
            p.poly([(s * 0.18, -0.62), (s * 0.52, -0.48), (s * 0.46, tip)], hair)
            p.poly([(s * 0.26, -0.6), (s * 0.46, -0.52), (s * 0.44, tip + 0.15)],
                   (250, 180, 190) if "cat_ears" in acc else (250, 250, 250), outline=False)
    if "hairband" in acc:
        p.arc(-0.56, -0.74, 0.56, 0.48, 195, 345, fill=accent, width=max(2, int(p.u * 0.07)))
    if "hairclip" in acc:
        for k in range(2):
            x, y = -0.42 + 0.1 * k, -0.36 - 0.04 * k
            p.poly([(x, y), (x + 0.12, y - 0.1), (x + 0.15, y - 0.07), (x + 0.03, y + 0.03)], accent)
    if "hair_flower" in acc:
        for k in range(5):
            a = k * 2 * math.pi / 5
            p.circle(0.42 + 0.06 * math.cos(a), -0.42 + 0.06 * math.sin(a), 0.05, (250, 170, 200))
        p.circle(0.42, -0.42, 0.03, (250, 220, 80), outline=False)
    if "hair_bow" in acc:
        bx, by = -0.4, -0.6
        p.poly([(bx, by), (bx - 0.18, by - 0.12), (bx - 0.18, by + 0.12)], accent)
        p.poly([(bx, by), (bx + 0.18, by - 0.12), (bx + 0.18, by + 0.12)], accent)
        p.circle(bx, by, 0.045, shade(accent, -0.2))
    if "glasses" in acc:
        for s in (-1, 1):
            p.ellipse(s * 0.21 - 0.15, 0.0, s * 0.21 + 0.15, 0.26, None, width=p.lw + 1)
        p.line([(-0.06, 0.1), (0.06, 0.1)], width=p.lw + 1)
    if "halo" in acc:
        p.d.ellipse(p.box(-0.34, -1.02, 0.34, -0.86), outline=(250, 210, 60), width=max(2, p.lw * 2))
    if "hat" in acc:
        p.poly([(-0.44, -0.55), (-0.36, -1.02), (0.36, -1.02), (0.44, -0.55)], accent)
        p.ellipse(-0.78, -0.66, 0.78, -0.44, accent)
        p.poly([(-0.42, -0.62), (0.42, -0.62), (0.41, -0.7), (-0.41, -0.7)], shade(accent, -0.4))
    if "maid_headdress" in acc:
        p.poly([(-0.42, -0.6), (0.42, -0.6), (0.34, -0.76), (-0.34, -0.76)], (250, 250, 250))


def _occluder(p: _Pen, scene: Scene, skin: RGB) -> None:
    x, y, r = scene.occluder_xy
    if scene.occluder == "hand":
        p.ellipse(x - r * 0.7, y - r, x + r * 0.7, y + r, skin)
        for k in range(3):
            p.line([(x - r * 0.4 + k * r * 0.4, y - r * 0.9), (x - r * 0.4 + k * r * 0.4, y - r * 0.3)])
    elif scene.occluder == "bubble":
        p.ellipse(x - r * 1.3, y - r, x + r * 1.3, y + r, (255, 255, 255), width=p.lw * 2)
        p.poly([(x, y + r * 0.8), (x + r * 0.5, y + r * 0.8), (x + r * 0.6, y + r * 1.5)],
               (255, 255, 255), outline=False)
    elif scene.occluder == "object":
        p.poly([(x - r, y - r * 0.8), (x + r, y - r), (x + r * 1.1, y + r), (x - r * 0.9, y + r * 0.9)],
               scene.occluder_colour, width=p.lw * 2)


def render(scene: Scene, size: int, full_size: int) -> tuple[Image.Image, Image.Image]:
    """Draw ``scene`` and return ``(face crop, full-figure view)`` of sizes ``size``/``full_size``."""
    ch, st = scene.character, scene.artist
    # supersample: drawn at 2x, so that after the 2x reduction the face crop (~1.45 head widths)
    # and the full views (2-3.3 head widths) are resampled at about 1:1
    u = max(1.4 * size, 0.8 * full_size, 24.0)
    w, h = int(CANVAS_W * u), int(CANVAS_H * u)
    cx, cy = CANVAS_CX * u, CANVAS_CY * u
    canvas = _background(scene, w, h, scene.pattern_seed)
    lw = max(1, round(st.line * u / 45))
    p = _Pen(ImageDraw.Draw(canvas), cx, cy, u, lw, st.outline)

    hair = stylise(HAIR_COLOURS[ch.hair_colour], st)
    skin = stylise(SKIN_TONES[ch.skin], st, hue=0.3)  # green faces look wrong, not stylish
    eye = stylise(EYE_COLOURS[ch.eye_colour], st)
    cloth = stylise(CLOTH_COLOURS[scene.outfit_colour], st)
    accent = stylise(ACCENT_COLOURS[ch.accent], st)

    _back_hair(p, ch.hair_style, hair)
    _body(p, scene.outfit, cloth, skin, accent)
    _face(p, skin)
    _eyes(p, scene, eye)
    _mouth(p, scene, skin)
    _mark(p, ch.mark, accent)
    _front_hair(p, ch, hair)
    _hair_ties(p, ch.hair_style, accent)
    _accessories(p, set(ch.accessories) | ({"maid_headdress"} if scene.outfit == "maid" else set()),
                 hair, accent)
    if scene.occluder != "none":
        _occluder(p, scene, skin)

    # Anti-alias by a 2x box reduction, then cut both views with one affine map each (rotation
    # about the head centre + crop + scale), which is much cheaper than rotating the canvas.
    canvas = canvas.reduce(2)
    cx, cy, u = cx / 2, cy / 2, u / 2
    angle = -math.radians(scene.rotation)  # PIL's convention: positive degrees turn counterclockwise
    m00, m01, m10, m11 = math.cos(angle), math.sin(angle), -math.sin(angle), math.cos(angle)

    def crop(box: tuple[float, float, float], out: int) -> Image.Image:
        bx, by, side = box
        s = side * u / out  # input pixels per output pixel
        vx, vy = bx * u - out / 2 * s, by * u - out / 2 * s  # output (0, 0) relative to the head
        data = (m00 * s, m01 * s, cx + m00 * vx + m01 * vy,
                m10 * s, m11 * s, cy + m10 * vx + m11 * vy)
        img = canvas.transform((out, out), Image.Transform.AFFINE, data,
                               resample=Image.Resampling.BILINEAR,
                               fillcolor=scene.background_colours[0])
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if scene.flip else img

    return crop(scene.face_box, size), crop(scene.full_box, full_size)

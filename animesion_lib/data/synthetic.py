"""A procedural "synthetic Danbooru": the embedded default dataset of the book.

There is no Danbooru on a fresh machine, so :func:`make_synthetic` *writes the DAF:re layout*
(``faces/``, ``fullMin256/``, ``labels/{train,val,test}.csv``, ``labels/{split}_tags.csv``,
``labels/classid_classname.csv``) and the very loaders that read real DAF:re read it back.
It also writes ``characters.json`` (every character's attributes) and a difficulty card
(``difficulty_card.json`` / ``.md``, see :mod:`animesion_lib.data.difficulty`).

What is in it
-------------
* **Characters** are fixed combinations of visual attributes drawn with PIL
  (:mod:`animesion_lib.data.synthetic_draw`): hair colour (12), hair style (7), bangs (3), eye
  colour (9), skin tone (4), 0-2 accessories out of 10 (hat, hair bow, glasses, horns, cat/fox
  ears, hairclip, halo, hairband, hair flower), outfit (6 kinds x 8 colours), an optional small
  signature mark (mole under the eye, star mark, band-aid, scar, whiskers, fang) and an ahoge.
  Every value is shared by several characters, so no single attribute names one. A share of the
  characters (``twin_fraction``) come in **near-twin pairs** ("sisters" of the same series) that
  differ in one small detail only: the mark, the ahoge, the eye colour, a small accessory or the
  bangs. Class names look like Danbooru character tags, ``given_family_(series)``; class ids are
  0..N-1 in name order.
* **Images** vary: artist style (line weight, outline colour, hue shift, saturation, brightness,
  eye size; 12 invented artists), expression (neutral, smile, open-mouth smile, open mouth, closed
  eyes, blush), background (plain, gradient, stripes, polka dots, checks, outdoors by day or
  night, indoors), framing (portrait, upper body, cowboy shot), position, scale, rotation,
  mirror, occlusion (a hand, a speech bubble, an object), an alternate costume, and JPEG
  quality. The face crop goes to ``faces/`` and a larger view with body and outfit to
  ``fullMin256/`` (same relative path, same labels).
* **Tags** look like Danbooru's and describe the full image: the character's attribute tags,
  image-level tags (expression, background, framing, ``1girl``, ``solo``...), general filler
  tags (a few habitual ones per character, the rest random with a Zipf-like popularity), and
  noise: tags that are missing and wrong attribute tags that are present.
* **Classes** are long-tailed: ``min_per_class`` images each (20, as DAF:re) plus a Zipf share
  (exponent ``zipf_exponent``) of the rest; each class is split 0.7/0.1/0.2.

Noise levels and why (the defaults of :class:`SyntheticConfig`)
----------------------------------------------------------------
The point of the dataset is that neither modality alone solves it, so that the multimodal
chapters mean something. The difficulty card written next to the data measures it for each run:
logistic regressions on a bag of tags, on 8x8 thumbnails, and on both together; the Datasets
chapter shows the ``cpu`` profile's from its record (``results/cpu/datasets.json``).

Tags (the "tags alone" side):

* ``attribute_tag_keep = 0.65``: each attribute tag of the character is present with this
  probability (Danbooru tagging is incomplete);
* ``sparse_tagging = 0.4`` of the posts are barely tagged: their attribute tags are kept with
  ``sparse_tag_keep = 0.1`` only -- the image has to identify these;
* ``spurious_tags = 1.5`` wrong attribute tags per image on average (mistagging);
* ``alternate_costume = 0.25``: the outfit (drawn and tagged) is another one;
* near-twins differ in one tag only, which is often missing.

Images (the "image alone" side):

* ``twin_fraction = 0.5`` of the characters are near-twins, mostly differing in a tiny detail
  (a mole is about one pixel at 64 px; the ahoge is outside the face crop, visible only in
  ``fullMin256/``) -- the tags have to tell these apart;
* artist palettes shift hue by up to +-0.1 and saturation by x0.5-1.4, so neighbouring hair
  colours (blonde/orange, blue/purple) overlap; ``occlusion = 0.3``; rotation up to 15 degrees;
  scale +-20%; JPEG quality 30-95; mirrored half of the time.

Everything is deterministic from ``seed``: each image has its own random stream, so the output
is byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from animesion_lib.data.layout import CLASS_FILE, write_classes, write_split
from animesion_lib.data.splits import split_counts
from animesion_lib.data.synthetic_draw import (
    ACCENT_COLOURS,
    BACKGROUND_COLOURS,
    CLOTH_COLOURS,
    EYE_COLOURS,
    HAIR_COLOURS,
    OUTLINE_COLOURS,
    SKIN_TONES,
    ArtistStyle,
    Character,
    Scene,
    render,
)
from animesion_lib.errors import AnimesionError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes, seed and noise levels of one synthetic dataset (see the module docstring)."""

    classes: int = 100
    images: int = 6000
    size: int = 64  # face crops are size x size
    full_size: int | None = None  # full-figure views; None = 2 * size
    seed: int = 0
    min_per_class: int = 20
    zipf_exponent: float = 1.0
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    twin_fraction: float = 0.5  # share of characters that belong to a near-twin pair
    attribute_tag_keep: float = 0.65  # P(an attribute tag of the character is present)
    sparse_tagging: float = 0.4  # share of barely tagged posts ...
    sparse_tag_keep: float = 0.1  # ... whose attribute tags are present with this probability
    image_tag_keep: float = 0.85  # P(an expression/background/framing tag is present)
    habit_tag_keep: float = 0.4  # P(each of a character's 2 habitual general tags is present)
    filler_tags: float = 6.0  # mean number of random general tags per image
    spurious_tags: float = 1.5  # mean number of wrong attribute tags per image
    alternate_costume: float = 0.25
    occlusion: float = 0.3
    max_rotation: float = 15.0
    jpeg_quality: tuple[int, int] = (30, 95)
    workers: int = 1
    overwrite: bool = False
    progress: bool = True
    card: bool = True

    @property
    def resolved_full_size(self) -> int:
        return self.full_size or 2 * self.size

    @classmethod
    def from_profile(cls, profile: str = "cpu", **overrides) -> "SyntheticConfig":
        """The ``smoke`` or ``cpu`` preset, with keyword overrides (None values are ignored)."""
        if profile not in PROFILES:
            raise AnimesionError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        values = dict(PROFILES[profile])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


PROFILES: dict[str, dict] = {
    "smoke": dict(classes=12, images=400, size=32, min_per_class=20),
    "cpu": dict(classes=100, images=6000, size=64, min_per_class=20),
}


@dataclass(frozen=True)
class CharacterEntry:
    """A character with its name and what only the tags know about it."""

    name: str
    series: str
    look: Character
    habits: tuple[str, ...]  # general tags this character often has (a weapon, a pet...)
    mood: tuple[float, ...]  # weights of the expressions in EXPRESSIONS
    twin_of: str | None = None
    twin_difference: str | None = None


@dataclass
class SyntheticSummary:
    """What :func:`make_synthetic` wrote."""

    root: Path
    num_classes: int
    num_images: int
    split_sizes: dict[str, int]
    seconds: float
    card: dict | None = None
    config: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- vocabulary

HAIR_STYLES = ("short_hair", "long_hair", "twintails", "ponytail", "bob_cut", "drill_hair",
               "side_ponytail")
HAIR_STYLE_TAGS = {
    "short_hair": ["short_hair"], "long_hair": ["long_hair"], "twintails": ["twintails", "long_hair"],
    "ponytail": ["ponytail"], "bob_cut": ["bob_cut", "short_hair"],
    "drill_hair": ["drill_hair", "long_hair"], "side_ponytail": ["side_ponytail"],
}
BANGS = ("blunt_bangs", "swept_bangs", "parted_bangs")
ACCESSORIES = ("hat", "hair_bow", "glasses", "horns", "cat_ears", "fox_ears", "hairclip", "halo",
               "hairband", "hair_flower")
ACCESSORY_TAGS = {
    "hat": ["hat"], "hair_bow": ["hair_bow", "bow"], "glasses": ["glasses"], "horns": ["horns"],
    "cat_ears": ["cat_ears", "animal_ears"], "fox_ears": ["fox_ears", "animal_ears"],
    "hairclip": ["hairclip"], "halo": ["halo"], "hairband": ["hairband"],
    "hair_flower": ["hair_flower"],
}
CONFLICTS = {("hat", "hairband"), ("hat", "halo"), ("cat_ears", "fox_ears"), ("hat", "hair_bow"),
             ("horns", "cat_ears"), ("horns", "fox_ears")}
SMALL_ACCESSORIES = ("hairclip", "hair_flower")
# What tells near-twins apart: mostly tiny details (a mole is about one pixel at 64 px, the ahoge
# sits above the face crop), sometimes the eye colour or the bangs.
TWIN_DIFFERENCES = ("mark", "mark", "mark", "ahoge", "accessory", "accessory", "eye_colour", "bangs")
OUTFITS = ("serafuku", "dress", "hoodie", "kimono", "jacket", "maid")
MARKS = ("mole_under_eye", "facial_mark", "bandaid_on_face", "scar_on_face", "whisker_markings",
         "fang")
MARK_TAGS = {
    "mole_under_eye": ["mole_under_eye", "mole"], "facial_mark": ["facial_mark"],
    "bandaid_on_face": ["bandaid_on_face", "bandaid"], "scar_on_face": ["scar_on_face", "scar"],
    "whisker_markings": ["whisker_markings"], "fang": ["fang"],
}
SKIN_TAGS = {"pale": ["pale_skin"], "fair": [], "tan": ["tan"], "dark": ["dark_skin"]}
EXPRESSIONS = ("neutral", "smile", "open_smile", "open", "closed")
EXPRESSION_TAGS = {
    "neutral": ["closed_mouth"], "smile": ["smile", "closed_mouth"],
    "open_smile": ["smile", "open_mouth", ":d"], "open": ["open_mouth", ":o"],
    "closed": ["closed_eyes", "smile"],
}
FRAMINGS = {  # name: (probability, centre y of the crop in head units, side in head units)
    "portrait": (0.3, 0.45, 2.0), "upper_body": (0.45, 0.85, 2.7), "cowboy_shot": (0.25, 1.2, 3.3),
}
BACKGROUNDS = {"plain": 0.38, "gradient": 0.14, "stripes": 0.05, "dots": 0.05, "checks": 0.04,
               "day": 0.16, "night": 0.06, "indoors": 0.12}
OCCLUDER_TAGS = {"hand": ["hand_up"], "bubble": ["speech_bubble"], "object": ["holding"]}

# General tags with no visual counterpart here, most popular first (the Danbooru long tail).
FILLER_TAGS = """
bangs jewelry earrings bare_shoulders collarbone long_sleeves
hair_between_eyes sidelocks upper_teeth necklace choker short_sleeves frills
skirt pleated_skirt thighhighs gloves white_gloves black_gloves detached_sleeves sleeveless
hair_ornament hair_ribbon ribbon star_(symbol) heart sparkle petals cherry_blossoms flower rose
leaf food fruit cup holding_cup book holding_book bag school_bag umbrella holding_umbrella sword
holding_sword weapon katana gun staff wand holding_weapon shield armor cape cloak scarf
wide_sleeves puffy_sleeves bowtie collared_shirt white_shirt vest belt buttons zipper pocket
hands_up arms_up arm_up hand_on_hip hands_on_hips crossed_arms v peace_sign outstretched_arm
pointing waving head_tilt looking_back looking_to_the_side looking_away from_side from_above
from_below profile light_smile grin parted_lips tongue tongue_out teeth sweat sweatdrop tears
crying angry frown pout embarrassed nervous surprised sleepy jitome half-closed_eyes eyelashes
eyeshadow makeup lipstick nail_polish ring bracelet wristband anklet hair_tie scrunchie
hair_bun double_bun braid single_braid twin_braids hair_over_shoulder hair_intakes
wavy_hair messy_hair floating_hair wind hair_flowing_over signature watermark artist_name
dated english_text translated commentary_request highres absurdres lowres official_art
game_cg cover magazine_cover sketch monochrome greyscale traditional_media watercolor_(medium)
lineart chibi blurry blurry_background depth_of_field bokeh lens_flare light_rays sunlight
shadow backlighting glowing glowing_eyes magic fire water ice snow snowing rain bubble
feathers wings angel_wings bat_wings tail cat_tail fox_tail animal ear_piercing piercing
headphones microphone music musical_note instrument guitar phone holding_phone smartphone
candy lollipop ice_cream cake sweets bread onigiri tea teacup bottle can
box gift letter envelope paper card flag balloon kite fan paper_fan lantern
mask mask_on_head goggles eyepatch bandages halloween christmas new_year valentine
birthday school classroom desk chair bed pillow stuffed_toy teddy_bear cat dog bird
""".split()

# Things a character is often drawn with; each character has two, shared with others.
HABIT_TAGS = """holding_sword holding_book holding_umbrella holding_phone holding_cup katana staff
wand gun cat dog bird stuffed_toy headphones microphone guitar scarf cape wings tail candy
lollipop flag lantern""".split()

GIVEN_GIRL = """aoi sakura hina yui mio rin akane mei kaede nanami haruka yuki miyu saki asuka
nozomi kana rei hikari chiyo sayaka tsubasa honoka madoka natsuki mashiro kotone ayame
shiori minami ruri suzu hotaru umi kurumi koharu misaki momoka nagisa izumi fuuka""".split()
GIVEN_BOY = """haruto ren sora yuto kaito riku souta takumi hayato ryou kenji daichi shun
itsuki""".split()
FAMILY = """hoshino tachibana kirishima amamiya shirogane kurosawa hanazono takanashi
kagami sakuraba minase tsukishiro aizawa fujimiya hinata kisaragi mizuhara morino
nanase ootori sagara shinonome tendou yukimura asahina kazami hayase ichinose""".split()
SERIES = """starlight crimson_academy blue_archive_line magical_sweets moonlit_requiem
azure_skies idol_rhapsody dragon_knights clockwork_garden sakura_chronicle neon_drive
witch_cafe summer_pockets_ex eternal_melody frost_kingdom""".split()


# --------------------------------------------------------------------------- characters

# Popularity of attribute values, roughly as on Danbooru (brown hair and blue eyes are common,
# aqua hair rare): many characters share the common values, so a combination of the colour
# tags alone rarely names a character.
HAIR_COLOUR_WEIGHTS = {"brown": 1.6, "black": 1.5, "blonde": 1.4, "blue": 1.0, "pink": 0.9,
                       "purple": 0.9, "white": 0.7, "red": 0.8, "grey": 0.6, "green": 0.6,
                       "orange": 0.5, "aqua": 0.5}
EYE_COLOUR_WEIGHTS = {"blue": 1.5, "red": 1.2, "brown": 1.2, "purple": 1.0, "green": 0.9,
                      "yellow": 0.8, "pink": 0.5, "aqua": 0.5, "grey": 0.4}
CLOTH_COLOUR_WEIGHTS = {"black": 1.5, "white": 1.4, "blue": 1.2, "red": 0.8, "pink": 0.7,
                        "green": 0.5, "yellow": 0.5, "purple": 0.6}
OUTFIT_WEIGHTS = {"serafuku": 1.5, "dress": 1.2, "jacket": 1.0, "hoodie": 0.8, "kimono": 0.6,
                  "maid": 0.4}


def _weighted(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _random_look(rng: random.Random) -> Character:
    gender = "boy" if rng.random() < 0.15 else "girl"
    if gender == "girl":
        style = _weighted(rng, {"short_hair": 1, "long_hair": 1.4, "twintails": 1, "ponytail": 1,
                                "bob_cut": 0.8, "drill_hair": 0.5, "side_ponytail": 0.6})
        outfits = OUTFITS
    else:
        style = _weighted(rng, {"short_hair": 0.8, "ponytail": 0.1, "long_hair": 0.1})
        outfits = ("serafuku", "hoodie", "kimono", "jacket")
    accessories: list[str] = []
    for _ in range(_weighted(rng, {0: 0.35, 1: 0.45, 2: 0.2})):
        choice = rng.choice(ACCESSORIES)
        if gender == "boy" and choice in ("hair_bow", "hair_flower"):
            continue
        if choice in accessories or any((a, choice) in CONFLICTS or (choice, a) in CONFLICTS
                                        for a in accessories):
            continue
        accessories.append(choice)
    return Character(
        gender=gender,
        hair_colour=_weighted(rng, HAIR_COLOUR_WEIGHTS),
        hair_style=style,
        bangs=rng.choice(BANGS),
        eye_colour=_weighted(rng, EYE_COLOUR_WEIGHTS),
        skin=_weighted(rng, {"pale": 0.2, "fair": 0.55, "tan": 0.15, "dark": 0.1}),
        accessories=tuple(sorted(accessories)),
        outfit=_weighted(rng, {o: OUTFIT_WEIGHTS[o] for o in outfits}),
        outfit_colour=_weighted(rng, CLOTH_COLOUR_WEIGHTS),
        mark="none" if rng.random() < 0.5 else rng.choice(MARKS),
        ahoge=rng.random() < 0.2,
        accent=rng.randrange(len(ACCENT_COLOURS)),
    )


def _near_twin(rng: random.Random, look: Character) -> tuple[Character, str]:
    """The same look with one small detail changed; returns (look, what changed)."""
    what = rng.choice(TWIN_DIFFERENCES)
    if what == "mark":
        return replace(look, mark=rng.choice([m for m in ("none",) + MARKS if m != look.mark])), what
    if what == "ahoge":
        return replace(look, ahoge=not look.ahoge), what
    if what == "eye_colour":
        return replace(look, eye_colour=rng.choice([e for e in EYE_COLOURS if e != look.eye_colour])), what
    if what == "bangs":
        return replace(look, bangs=rng.choice([b for b in BANGS if b != look.bangs])), what
    acc = set(look.accessories)
    small = [a for a in SMALL_ACCESSORIES if a in acc]
    if small:
        acc.discard(rng.choice(small))
    else:
        acc.add(rng.choice([a for a in SMALL_ACCESSORIES if not any(
            (a, b) in CONFLICTS or (b, a) in CONFLICTS for b in acc)] or ["hairclip"]))
    return replace(look, accessories=tuple(sorted(acc))), what


def make_characters(n: int, seed: int, twin_fraction: float = 0.4,
                    exclude: Collection[Character] = ()) -> list[CharacterEntry]:
    """``n`` characters with unique looks and names, sorted by name (the class-id order).

    No look in ``exclude`` is used: a pretraining *source* universe must not contain the target
    universe's characters, or fine-tuning would start from a model that has seen them.
    """
    exclude = frozenset(exclude)
    rng = random.Random(f"animesion-synthetic-characters:{seed}")
    n_pairs = min(int(round(n * twin_fraction / 2)), n // 2)
    looks: list[Character] = []
    while len(looks) < n - n_pairs:
        look = _random_look(rng)
        if look not in looks and look not in exclude:
            looks.append(look)
    twins: list[tuple[int, Character, str]] = []
    for base in rng.sample(range(len(looks)), n_pairs):
        for _ in range(50):
            look, what = _near_twin(rng, looks[base])
            if look not in looks and look not in exclude and all(look != t[1] for t in twins):
                twins.append((base, look, what))
                break

    used: set[str] = set()

    def new_name(gender: str, family: str | None, series: str) -> str:
        for _ in range(1000):
            given = rng.choice(GIVEN_BOY if gender == "boy" else GIVEN_GIRL)
            fam = family or rng.choice(FAMILY)
            name = f"{given}_{fam}_({series})"
            if name not in used:
                used.add(name)
                return name
        raise AnimesionError("ran out of character names; use fewer classes")

    def extras() -> tuple[tuple[str, ...], tuple[float, ...]]:
        habits = tuple(rng.sample(HABIT_TAGS, 2))
        mood = tuple(round(rng.random() ** 2 + 0.05, 3) for _ in EXPRESSIONS)
        return habits, mood

    entries: list[CharacterEntry] = []
    for look in looks:
        series = rng.choice(SERIES)
        entries.append(CharacterEntry(new_name(look.gender, None, series), series, look, *extras()))
    for base, look, what in twins:
        sister = entries[base]
        family = sister.name.split("_(")[0].split("_", 1)[1]
        entries.append(CharacterEntry(new_name(look.gender, family, sister.series), sister.series,
                                      look, *extras(), twin_of=sister.name, twin_difference=what))
    # record the pairing on both sides
    partner = {e.name: e.twin_of for e in entries if e.twin_of}
    partner.update({v: k for k, v in partner.items()})
    entries = [replace(e, twin_of=partner.get(e.name)) for e in entries]
    return sorted(entries, key=lambda e: e.name)


def outfit_tags(outfit: str, colour: str) -> list[str]:
    return {
        "serafuku": ["school_uniform", "serafuku", "sailor_collar", f"{colour}_serafuku"],
        "dress": ["dress", f"{colour}_dress"],
        "hoodie": ["hoodie", f"{colour}_hoodie"],
        "kimono": ["japanese_clothes", "kimono", f"{colour}_kimono"],
        "jacket": ["jacket", f"{colour}_jacket", "necktie"],
        "maid": ["maid", "apron", "maid_headdress", f"{colour}_dress"],
    }[outfit]


def attribute_tags(look: Character, outfit: str | None = None, outfit_colour: str | None = None
                   ) -> list[str]:
    """The Danbooru tags that describe a character's look (in the given outfit)."""
    outfit = outfit or look.outfit
    colour = outfit_colour or look.outfit_colour
    tags = ["1girl"] if look.gender == "girl" else ["1boy", "male_focus"]
    tags += [f"{look.hair_colour}_hair", *HAIR_STYLE_TAGS[look.hair_style], look.bangs,
             f"{look.eye_colour}_eyes", *SKIN_TAGS[look.skin]]
    for a in look.accessories:
        tags += ACCESSORY_TAGS[a]
    tags += outfit_tags(outfit, colour)
    if look.mark != "none":
        tags += MARK_TAGS[look.mark]
    if look.ahoge:
        tags.append("ahoge")
    return list(dict.fromkeys(tags))


def _all_attribute_tags() -> list[str]:
    tags = ["1girl", "1boy", "male_focus", "ahoge", *BANGS]
    tags += [f"{c}_hair" for c in HAIR_COLOURS] + [f"{c}_eyes" for c in EYE_COLOURS]
    for group in (HAIR_STYLE_TAGS, ACCESSORY_TAGS, MARK_TAGS, SKIN_TAGS):
        for values in group.values():
            tags += values
    for outfit in OUTFITS:
        for colour in CLOTH_COLOURS:
            tags += outfit_tags(outfit, colour)
    return sorted(set(tags))


ATTRIBUTE_VOCAB = _all_attribute_tags()


def make_artists(seed: int, n: int = 12) -> list[ArtistStyle]:
    rng = random.Random(f"animesion-synthetic-artists:{seed}")
    return [ArtistStyle(line=rng.uniform(0.6, 1.7), outline=rng.choice(OUTLINE_COLOURS),
                        hue_shift=rng.uniform(-0.1, 0.1), saturation=rng.uniform(0.5, 1.4),
                        brightness=rng.uniform(0.88, 1.08), eye_scale=rng.uniform(0.88, 1.15))
            for _ in range(n)]


# --------------------------------------------------------------------------- one image


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


_FILLER_WEIGHTS = [1.0 / (k + 1) ** 0.8 for k in range(len(FILLER_TAGS))]


def make_scene(entry: CharacterEntry, rng: random.Random, artists: list[ArtistStyle],
               cfg: SyntheticConfig) -> tuple[Scene, list[str]]:
    """Draw the variation of one image and its (noisy) tags from the image's own stream."""
    look = entry.look
    outfit, colour, alternate = look.outfit, look.outfit_colour, False
    if rng.random() < cfg.alternate_costume:
        alternate = True
        outfit = rng.choice(OUTFITS if look.gender == "girl" else ("serafuku", "hoodie", "jacket"))
        colour = rng.choice(list(CLOTH_COLOURS))
    expression = rng.choices(EXPRESSIONS, weights=entry.mood)[0]
    background, colours, extra, image_tags = _draw_background(rng)
    framing = _weighted(rng, {k: v[0] for k, v in FRAMINGS.items()})
    _, fy, fside = FRAMINGS[framing]
    occluder = "none"
    if rng.random() < cfg.occlusion:
        occluder = _weighted(rng, {"hand": 0.4, "bubble": 0.3, "object": 0.3})
        image_tags += OCCLUDER_TAGS[occluder]
    blush = rng.random() < 0.25
    scene = Scene(
        character=look, artist=rng.choice(artists), outfit=outfit, outfit_colour=colour,
        eyes="closed" if expression == "closed" else "open",
        mouth={"closed": "smile"}.get(expression, expression), blush=blush,
        background=background, background_colours=colours, background_extra=extra,
        occluder=occluder,
        occluder_xy=(rng.uniform(-0.45, 0.45), rng.uniform(-0.1, 0.5), rng.uniform(0.18, 0.36)),
        occluder_colour=rng.choice(ACCENT_COLOURS),
        rotation=max(-cfg.max_rotation, min(cfg.max_rotation, rng.gauss(0, cfg.max_rotation / 2))),
        flip=rng.random() < 0.5,
        face_box=(rng.uniform(-0.12, 0.12), 0.08 + rng.uniform(-0.12, 0.12), 1.45 * rng.uniform(0.85, 1.25)),
        full_box=(rng.uniform(-0.15, 0.15), fy + rng.uniform(-0.1, 0.1), fside * rng.uniform(0.92, 1.05)),
        pattern_seed=[rng.random() for _ in range(16)],
    )
    image_tags += EXPRESSION_TAGS[expression] + [framing, "solo"]
    if blush:
        image_tags.append("blush")
    if expression != "closed":
        image_tags.append("looking_at_viewer")
    if alternate and rng.random() < 0.6:
        image_tags.append("alternate_costume")

    return scene, _observed_tags(rng, entry, outfit, colour, image_tags, cfg)


def _draw_background(rng: random.Random) -> tuple[str, tuple, bool, list[str]]:
    """Background kind, its two colours, whether it has an extra (a tree), and its tags."""
    background = _weighted(rng, BACKGROUNDS)
    names = list(BACKGROUND_COLOURS)
    extra = False
    if background == "plain":
        name = "white" if rng.random() < 0.5 else rng.choice(names)
        return background, (BACKGROUND_COLOURS[name],) * 2, extra, ["simple_background", f"{name}_background"]
    if background in ("gradient", "stripes", "dots", "checks"):
        a, b = rng.sample(names, 2)
        tag = {"gradient": "gradient_background", "stripes": "striped_background",
               "dots": "polka_dot_background", "checks": "checkered_background"}[background]
        return background, (BACKGROUND_COLOURS[a], BACKGROUND_COLOURS[b]), extra, [tag]
    if background == "day":
        extra = rng.random() < 0.5
        tags = ["outdoors", "day", "sky", "blue_sky", "cloud", "grass"] + (["tree"] if extra else [])
        return background, ((110, 165, 240), (225, 238, 252)), extra, tags
    if background == "night":
        return background, ((18, 22, 70), (80, 55, 115)), extra, ["outdoors", "night", "night_sky", "starry_sky", "moon"]
    wall = BACKGROUND_COLOURS[rng.choice(names)]
    return background, (wall, (235, 225, 210)), extra, ["indoors", "window"]


def _observed_tags(rng: random.Random, entry: CharacterEntry, outfit: str, colour: str, image_tags: list[str],
                   cfg: SyntheticConfig) -> list[str]:
    """The tags a tagger left: each true tag kept with its probability, plus filler and wrong ones."""
    keep = cfg.sparse_tag_keep if rng.random() < cfg.sparse_tagging else cfg.attribute_tag_keep
    tags = {t for t in attribute_tags(entry.look, outfit, colour) if rng.random() < keep}
    tags |= {t for t in image_tags if rng.random() < cfg.image_tag_keep}
    tags |= {t for t in entry.habits if rng.random() < cfg.habit_tag_keep}
    tags |= set(rng.choices(FILLER_TAGS, weights=_FILLER_WEIGHTS, k=_poisson(rng, cfg.filler_tags)))
    tags |= set(rng.choices(ATTRIBUTE_VOCAB, k=_poisson(rng, cfg.spurious_tags)))
    return sorted(tags)


# --------------------------------------------------------------------------- the dataset plan


@dataclass(frozen=True)
class PlannedImage:
    index: int  # global image index: the image's random stream
    class_id: int
    rel: str  # "<class folder>/<post id>.jpg", relative to faces/ and fullMin256/
    split: str


def class_sizes(n_classes: int, n_images: int, min_per_class: int, exponent: float,
                rng: random.Random) -> list[int]:
    """Zipf-like sizes: ``min_per_class`` each plus a share of the rest proportional to
    ``rank ** -exponent``; ranks are a random permutation of the classes."""
    extra = n_images - n_classes * min_per_class
    if extra < 0:
        raise AnimesionError(f"{n_images} images cannot give {n_classes} classes "
                             f"{min_per_class} images each; ask for at least "
                             f"{n_classes * min_per_class} images or fewer classes")
    weights = [(r + 1) ** -exponent for r in range(n_classes)]
    total = sum(weights)
    shares = [extra * w / total for w in weights]
    sizes = [min_per_class + int(s) for s in shares]
    leftover = n_images - sum(sizes)  # hand the rounding remainder to the largest fractions
    for r in sorted(range(n_classes), key=lambda r: int(shares[r]) - shares[r])[:leftover]:
        sizes[r] += 1
    ranks = list(range(n_classes))
    rng.shuffle(ranks)
    return [sizes[ranks[c]] for c in range(n_classes)]


def class_folder(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "", name.lower().replace("(", "").replace(")", ""))


def plan_images(entries: list[CharacterEntry], cfg: SyntheticConfig) -> list[PlannedImage]:
    rng = random.Random(f"animesion-synthetic-plan:{cfg.seed}")
    sizes = class_sizes(len(entries), cfg.images, cfg.min_per_class, cfg.zipf_exponent, rng)
    post_ids = rng.sample(range(100_000, 9_000_000), cfg.images)
    plan: list[PlannedImage] = []
    for class_id, (entry, n) in enumerate(zip(entries, sizes)):
        slots = list(range(n))
        rng.shuffle(slots)  # the k-th image of the class takes split slot slots[k]
        n_train, n_val, _ = split_counts(n, cfg.split)
        for k in range(n):
            slot = slots[k]
            split = "train" if slot < n_train else "val" if slot < n_train + n_val else "test"
            index = len(plan)
            plan.append(PlannedImage(index, class_id, f"{class_folder(entry.name)}/{post_ids[index]}.jpg",
                                     split))
    return plan


# --------------------------------------------------------------------------- workers

_STATE: dict = {}


def _init_worker(entries, artists, cfg, root) -> None:
    _STATE.update(entries=entries, artists=artists, cfg=cfg, root=Path(root))


def _make_image(item: PlannedImage) -> list[str]:
    """Render, save (face + full view) and return the tags of one planned image."""
    cfg: SyntheticConfig = _STATE["cfg"]
    rng = random.Random(f"animesion-synthetic-image:{cfg.seed}:{item.index}")
    scene, tags = make_scene(_STATE["entries"][item.class_id], rng, _STATE["artists"], cfg)
    face, full = render(scene, cfg.size, cfg.resolved_full_size)
    lo, hi = cfg.jpeg_quality
    root: Path = _STATE["root"]
    face.save(root / "faces" / item.rel, "JPEG", quality=rng.randint(lo, hi))
    full.save(root / "fullMin256" / item.rel, "JPEG", quality=rng.randint(max(lo, 50), hi))
    return tags


# --------------------------------------------------------------------------- writing

# What each noise setting does, for the difficulty card (the module docstring says why).
NOISE_NOTES = {
    "attribute_tag_keep": "P(an attribute tag of the character is present) on a normal post",
    "sparse_tagging": "share of barely tagged posts (the image must identify them)",
    "sparse_tag_keep": "P(an attribute tag is present) on a barely tagged post",
    "image_tag_keep": "P(an expression / background / framing tag is present)",
    "habit_tag_keep": "P(each of the character's 2 habitual general tags is present)",
    "filler_tags": "mean number of random general tags per image",
    "spurious_tags": "mean number of wrong attribute tags per image",
    "twin_fraction": "share of characters in near-twin pairs differing in one small detail "
                     "(the tags must tell them apart)",
    "alternate_costume": "P(the character wears, and is tagged with, another outfit)",
    "occlusion": "P(a hand, speech bubble or object covers part of the face)",
    "max_rotation": "largest rotation in degrees",
    "jpeg_quality": "JPEG quality range of the face crops",
}

GENERATED = ("faces", "fullMin256", "labels", "characters.json", "difficulty_card.json",
             "difficulty_card.md", "generator.json")

# The source files whose code decides every pixel and tag; their hash stamps a generated folder.
_GENERATOR_SOURCES = ("synthetic.py", "synthetic_draw.py", "difficulty.py")


def generator_fingerprint() -> str:
    """A hash of the generator's own code: a folder made by older code is stale, even with the
    same configuration (a recalibrated noise level changes the data, not the options)."""
    digest = hashlib.sha256()
    for name in _GENERATOR_SOURCES:
        digest.update((Path(__file__).with_name(name)).read_bytes())
    return digest.hexdigest()[:16]


def _config_dict(cfg: SyntheticConfig) -> dict:
    """The options that decide the data (not how it is produced: workers, progress...)."""
    config = {f.name: getattr(cfg, f.name) for f in fields(cfg)
              if f.name not in ("overwrite", "progress", "workers", "card")}
    config["full_size"] = cfg.resolved_full_size
    return json.loads(json.dumps(config))  # tuples -> lists, as the stamp stores them


def is_current(out_dir: str | Path, config: SyntheticConfig) -> bool:
    """True when ``out_dir`` holds exactly what ``make_synthetic(out_dir, config)`` would write
    with this version of the generator (its ``generator.json`` stamp matches)."""
    stamp = Path(out_dir) / "generator.json"
    if not stamp.is_file() or not (Path(out_dir) / "labels" / "train.csv").is_file():
        return False
    try:
        written = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    return written == {"generator": generator_fingerprint(), "config": _config_dict(config)}


def _prepare_output(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise AnimesionError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise AnimesionError(f"{root} is not empty; choose another --out or pass --overwrite")
        for name in GENERATED:  # only what this generator writes; anything else stays
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _write_labels(root: Path, entries: list[CharacterEntry], plan: list[PlannedImage],
                  tags: list[list[str]]) -> None:
    labels = root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    write_classes(labels / CLASS_FILE, (e.name for e in entries), line_end="\n")
    for split in SPLITS:
        rows = sorted((p for p in plan if p.split == split), key=lambda p: (p.class_id, p.rel))
        write_split(labels / f"{split}.csv", [(p.class_id, p.rel) for p in rows], False, "\n")
        write_split(labels / f"{split}_tags.csv", [(p.class_id, p.rel, tags[p.index]) for p in rows],
                    True, "\n")


def _write_characters(root: Path, entries: list[CharacterEntry], plan: list[PlannedImage]) -> None:
    counts = [0] * len(entries)
    for p in plan:
        counts[p.class_id] += 1
    table = []
    for class_id, e in enumerate(entries):
        look = asdict(e.look)
        look["accent"] = list(ACCENT_COLOURS[e.look.accent])
        table.append({"class_id": class_id, "name": e.name, "series": e.series,
                      "folder": class_folder(e.name), "images": counts[class_id],
                      "attributes": look, "tags": attribute_tags(e.look),
                      "habit_tags": list(e.habits), "twin_of": e.twin_of,
                      "twin_difference": e.twin_difference})
    (root / "characters.json").write_text(json.dumps(table, indent=1) + "\n")


def character_looks(root: str | Path) -> frozenset[Character]:
    """The looks of a generated dataset's characters, read back from its ``characters.json``."""
    path = Path(root) / "characters.json"
    if not path.is_file():
        raise AnimesionError(f"{path}: not found; is {root} a dataset made by `animesion make-synthetic`?")
    looks = []
    for row in json.loads(path.read_text()):
        attributes = dict(row["attributes"])
        attributes["accent"] = ACCENT_COLOURS.index(tuple(attributes["accent"]))
        attributes["accessories"] = tuple(attributes["accessories"])
        looks.append(Character(**attributes))
    return frozenset(looks)


def make_synthetic(out_dir: str | Path, config: SyntheticConfig | None = None,
                   exclude_looks: Collection[Character] = ()) -> SyntheticSummary:
    """Generate the synthetic dataset into ``out_dir`` (DAF:re layout) and return a summary.

    ``exclude_looks``: characters that must not occur (see :func:`character_looks`).
    """
    cfg = config or SyntheticConfig()
    if cfg.classes < 2:
        raise AnimesionError("need at least 2 classes")
    if cfg.size < 16:
        raise AnimesionError("--size must be at least 16 pixels")
    root = Path(out_dir)
    started = time.perf_counter()
    _prepare_output(root, cfg.overwrite)

    entries = make_characters(cfg.classes, cfg.seed, cfg.twin_fraction, exclude=exclude_looks)
    plan = plan_images(entries, cfg)
    artists = make_artists(cfg.seed)
    for folder in {p.rel.split("/")[0] for p in plan}:
        (root / "faces" / folder).mkdir(parents=True, exist_ok=True)
        (root / "fullMin256" / folder).mkdir(parents=True, exist_ok=True)

    from tqdm.auto import tqdm

    bar = dict(total=len(plan), desc="drawing characters", unit="img", disable=not cfg.progress)
    if cfg.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn" if mp.get_start_method() == "spawn" else "fork").Pool(
            cfg.workers, _init_worker, (entries, artists, cfg, root)
        ) as pool:
            tags = list(tqdm(pool.imap(_make_image, plan, chunksize=32), **bar))
    else:
        _init_worker(entries, artists, cfg, root)
        tags = [_make_image(p) for p in tqdm(plan, **bar)]

    _write_labels(root, entries, plan, tags)
    _write_characters(root, entries, plan)
    config_dict = _config_dict(cfg)
    card = None
    if cfg.card:
        from animesion_lib.data.difficulty import difficulty_card, write_difficulty_card

        card = difficulty_card(root, seed=cfg.seed, generator=config_dict, notes=NOISE_NOTES)
        write_difficulty_card(root, card)
    # written last: a folder whose build was interrupted has no stamp and counts as stale
    (root / "generator.json").write_text(
        json.dumps({"generator": generator_fingerprint(), "config": config_dict}, indent=1) + "\n")
    sizes = {s: sum(p.split == s for p in plan) for s in SPLITS}
    return SyntheticSummary(root, len(entries), len(plan), sizes, time.perf_counter() - started,
                            card, config_dict)

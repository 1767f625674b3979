"""Procedural caption/image domain for the embedded tiny-sd model.

Scenes are flat-colored shapes on a flat background, 64x64 RGB, rendered without anti-aliasing so every
pixel is an exact palette color (a pixel judge can be exact on ground truth).

Three caption kinds (grammar also written to models/tiny-sd/domain.json for the TypeScript judge):
  single   : "a {size} {color} {shape} {position} on a {background} background"
  count    : "two {size} {color} {shape}s on a {background} background"   (positions free)
  relation : "a {color} {shape} {relation} a {color} {shape} on a {background} background" (both small)
Held-out color+shape pairs never appear in training (in any object of any caption kind).

Run `/usr/bin/python3 domain.py` to (re)write models/tiny-sd/domain.json and a preview sheet.
"""
import json
import os
import random
import re

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
GRID = 3

COLORS = {
    "red": (230, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 230, 20),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "purple": (150, 40, 200),
}
BACKGROUNDS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "brown": (115, 75, 45),
}
SHAPES = ["circle", "square", "triangle", "cross"]
SHAPE_PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
# 3x3 grid cells (row, col) -> phrase
POSITIONS = {
    "top left": {"phrase": "at the top left", "row": 0, "col": 0},
    "top": {"phrase": "at the top", "row": 0, "col": 1},
    "top right": {"phrase": "at the top right", "row": 0, "col": 2},
    "left": {"phrase": "on the left", "row": 1, "col": 0},
    "center": {"phrase": "in the center", "row": 1, "col": 1},
    "right": {"phrase": "on the right", "row": 1, "col": 2},
    "bottom left": {"phrase": "at the bottom left", "row": 2, "col": 0},
    "bottom": {"phrase": "at the bottom", "row": 2, "col": 1},
    "bottom right": {"phrase": "at the bottom right", "row": 2, "col": 2},
}
# size -> half extent (pixels) of the bounding box, jitter +-1
SIZES = {"small": 6, "large": 10}
RELATIONS = {
    "above": {"phrase": "above", "axis": "y", "sign": -1},
    "below": {"phrase": "below", "axis": "y", "sign": 1},
    "left of": {"phrase": "to the left of", "axis": "x", "sign": -1},
    "right of": {"phrase": "to the right of", "axis": "x", "sign": 1},
}
HELD_OUT = [("red", "triangle"), ("blue", "circle"), ("green", "cross"), ("yellow", "square")]
KIND_WEIGHTS = {"single": 0.6, "count": 0.2, "relation": 0.2}
JITTER = 3  # center jitter in pixels inside a cell

SPECIALS = {"bos": "<|startoftext|>", "eos": "<|endoftext|>", "unk": "<|unk|>"}
MAX_LENGTH = 77


def cell_center(row, col):
    cell = IMAGE_SIZE / GRID
    return (col + 0.5) * cell, (row + 0.5) * cell


# ----------------------------------------------------------------------------------------------- scenes
def allowed_pairs(held_out=False):
    ho = set(HELD_OUT)
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    return [p for p in pairs if (p in ho) == held_out]


def sample_scene(rng, held_out=False, kind=None):
    """A scene dict. held_out=True draws at least one object from the held-out color+shape pairs."""
    if kind is None:
        r = rng.random()
        acc = 0.0
        for k, w in KIND_WEIGHTS.items():
            acc += w
            if r < acc:
                kind = k
                break
        else:
            kind = "single"
    train_pairs = allowed_pairs(False)
    ho_pairs = allowed_pairs(True)
    bg = rng.choice(list(BACKGROUNDS))
    if kind == "single":
        color, shape = rng.choice(ho_pairs if held_out else train_pairs)
        pos = rng.choice(list(POSITIONS))
        size = rng.choice(list(SIZES))
        p = POSITIONS[pos]
        objs = [dict(color=color, shape=shape, size=size, row=p["row"], col=p["col"])]
        return dict(kind=kind, background=bg, objects=objs, position=pos, size=size)
    if kind == "count":
        color, shape = rng.choice(ho_pairs if held_out else train_pairs)
        cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], 2)
        objs = [dict(color=color, shape=shape, size="small", row=r, col=c) for r, c in cells]
        return dict(kind=kind, background=bg, objects=objs, count=2, size="small")
    # relation
    a = rng.choice(ho_pairs if held_out else train_pairs)
    while True:
        b = rng.choice(train_pairs)
        if b != a:
            break
    if held_out and rng.random() < 0.5:
        a, b = b, a
    rel = rng.choice(list(RELATIONS))
    fixed = rng.randrange(GRID)
    i, j = sorted(rng.sample(range(GRID), 2))
    info = RELATIONS[rel]
    # A is at i (smaller coordinate) when sign = -1
    ia, ib = (i, j) if info["sign"] < 0 else (j, i)
    if info["axis"] == "y":
        ca, cb = (ia, fixed), (ib, fixed)
    else:
        ca, cb = (fixed, ia), (fixed, ib)
    objs = [
        dict(color=a[0], shape=a[1], size="small", row=ca[0], col=ca[1]),
        dict(color=b[0], shape=b[1], size="small", row=cb[0], col=cb[1]),
    ]
    return dict(kind=kind, background=bg, objects=objs, relation=rel)


def caption(scene):
    bg = f"on a {scene['background']} background"
    o = scene["objects"]
    if scene["kind"] == "single":
        x = o[0]
        return f"a {x['size']} {x['color']} {x['shape']} {POSITIONS[scene['position']]['phrase']} {bg}"
    if scene["kind"] == "count":
        x = o[0]
        return f"two {x['size']} {x['color']} {SHAPE_PLURALS[x['shape']]} {bg}"
    a, b = o
    return f"a {a['color']} {a['shape']} {RELATIONS[scene['relation']]['phrase']} a {b['color']} {b['shape']} {bg}"


def render(scene, rng):
    """Render a scene to a uint8 HxWx3 array; rng gives jitter."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[scene["background"]])
    d = ImageDraw.Draw(img)
    for o in scene["objects"]:
        cx, cy = cell_center(o["row"], o["col"])
        cx += rng.uniform(-JITTER, JITTER)
        cy += rng.uniform(-JITTER, JITTER)
        r = SIZES[o["size"]] + rng.uniform(-1, 1)
        cx = min(max(cx, r + 1), IMAGE_SIZE - r - 1)  # keep the whole shape inside the image
        cy = min(max(cy, r + 1), IMAGE_SIZE - r - 1)
        draw_shape(d, o["shape"], cx, cy, r, COLORS[o["color"]])
    return np.asarray(img, dtype=np.uint8)


def draw_shape(d, shape, cx, cy, r, color):
    x0, y0, x1, y1 = round(cx - r), round(cy - r), round(cx + r) - 1, round(cy + r) - 1
    if shape == "circle":
        d.ellipse([x0, y0, x1, y1], fill=color)
    elif shape == "square":
        d.rectangle([x0, y0, x1, y1], fill=color)
    elif shape == "triangle":
        d.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=color)
    elif shape == "cross":
        w = (x1 - x0 + 1)
        t = max(2, round(w * 0.36))
        a0 = x0 + (w - t) // 2
        b0 = y0 + (w - t) // 2
        d.rectangle([a0, y0, a0 + t - 1, y1], fill=color)
        d.rectangle([x0, b0, x1, b0 + t - 1], fill=color)
    else:
        raise ValueError(shape)


# -------------------------------------------------------------------------------------------- tokenizer
def words():
    ws = set()
    for kind in ("single", "count", "relation"):
        pass
    parts = ["a", "two", "on", "background"]
    parts += list(COLORS) + list(BACKGROUNDS) + SHAPES + list(SHAPE_PLURALS.values()) + list(SIZES)
    for p in POSITIONS.values():
        parts += p["phrase"].split()
    for r in RELATIONS.values():
        parts += r["phrase"].split()
    for w in parts:
        ws.add(w)
    # a few general words so simple paraphrases do not all fall to <|unk|>
    ws.update(["an", "the", "of", "in", "at", "to", "and", "with", "image", "picture", "photo", "shape",
               ",", "."])
    return sorted(ws)


def vocab():
    """Word -> id. Special tokens get the highest ids; <|endoftext|> is the highest (CLIP's pooler takes the
    argmax of input_ids to find the EOS position)."""
    v = {w: i for i, w in enumerate(words())}
    n = len(v)
    v[SPECIALS["unk"]] = n
    v[SPECIALS["bos"]] = n + 1
    v[SPECIALS["eos"]] = n + 2
    return v


_PRETOK = re.compile(r"\w+|[^\w\s]+")  # HF tokenizers' `Whitespace` pre-tokenizer


def encode(text, v=None, max_length=MAX_LENGTH):
    v = v or vocab()
    toks = _PRETOK.findall(text.lower())
    ids = [v.get(t, v[SPECIALS["unk"]]) for t in toks]
    ids = [v[SPECIALS["bos"]]] + ids[: max_length - 2] + [v[SPECIALS["eos"]]]
    ids += [v[SPECIALS["eos"]]] * (max_length - len(ids))
    return ids


def tokenizer_json(v):
    bos, eos, unk = v[SPECIALS["bos"]], v[SPECIALS["eos"]], v[SPECIALS["unk"]]
    added = []
    for name, tid in ((SPECIALS["unk"], unk), (SPECIALS["bos"], bos), (SPECIALS["eos"], eos)):
        added.append(dict(id=tid, content=name, single_word=False, lstrip=False, rstrip=False,
                          normalized=False, special=True))
    return {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": MAX_LENGTH, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": MAX_LENGTH}, "direction": "Right", "pad_to_multiple_of": None,
                    "pad_id": eos, "pad_type_id": 0, "pad_token": SPECIALS["eos"]},
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": SPECIALS["bos"], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": SPECIALS["eos"], "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": SPECIALS["bos"], "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": SPECIALS["eos"], "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": SPECIALS["eos"], "type_id": 1}}],
            "special_tokens": {
                SPECIALS["bos"]: {"id": SPECIALS["bos"], "ids": [bos], "tokens": [SPECIALS["bos"]]},
                SPECIALS["eos"]: {"id": SPECIALS["eos"], "ids": [eos], "tokens": [SPECIALS["eos"]]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        # WordPiece with a whole-word vocabulary (no "##" pieces) behaves exactly like WordLevel: a word is its
        # id or <|unk|>. WordPiece is used because @huggingface/tokenizers (JS) has no WordLevel model.
        "model": {"type": "WordPiece", "unk_token": SPECIALS["unk"], "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": v},
    }


def write_tokenizer(folder):
    os.makedirs(folder, exist_ok=True)
    v = vocab()
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(v), f, indent=2)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(v, f, indent=2)
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": SPECIALS["bos"], "eos_token": SPECIALS["eos"], "unk_token": SPECIALS["unk"],
                   "pad_token": SPECIALS["eos"]}, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": MAX_LENGTH,
                   "do_lower_case": True, "padding_side": "right",
                   "bos_token": SPECIALS["bos"], "eos_token": SPECIALS["eos"], "unk_token": SPECIALS["unk"],
                   "pad_token": SPECIALS["eos"], "clean_up_tokenization_spaces": True}, f, indent=2)


# ------------------------------------------------------------------------------------------ domain.json
def domain_dict():
    cell = IMAGE_SIZE / GRID
    return {
        "version": 1,
        "image_size": IMAGE_SIZE,
        "grid": GRID,
        "colors": {k: list(v) for k, v in COLORS.items()},
        "backgrounds": {k: list(v) for k, v in BACKGROUNDS.items()},
        "shapes": SHAPES,
        "shape_plurals": SHAPE_PLURALS,
        "positions": {k: dict(v, region=[v["col"] * cell, v["row"] * cell, (v["col"] + 1) * cell,
                                         (v["row"] + 1) * cell]) for k, v in POSITIONS.items()},
        "position_region_format": "[x0, y0, x1, y1] in pixels; x1/y1 exclusive",
        "sizes": {k: {"half_extent": v, "jitter": 1, "bbox_extent": 2 * v} for k, v in SIZES.items()},
        "relations": RELATIONS,
        "center_jitter": JITTER,
        "kinds": KIND_WEIGHTS,
        "grammar": {
            "single": "a {size} {color} {shape} {position.phrase} on a {background} background",
            "count": "two {size} {color} {shape_plural} on a {background} background",
            "relation": "a {color} {shape} {relation.phrase} a {color} {shape} on a {background} background",
            "notes": "count and relation objects are always small; relation objects share a column (above/below) "
                     "or a row (left/right of); count objects are in two distinct random cells",
        },
        "held_out": [{"color": c, "shape": s} for c, s in HELD_OUT],
        "shape_geometry": {
            "circle": "ellipse inscribed in the bbox",
            "square": "the full bbox",
            "triangle": "apex at top center, base along the bottom edge",
            "cross": "plus sign, arm thickness 0.36 of the bbox width",
        },
        "tokenizer": {"max_length": MAX_LENGTH, "specials": SPECIALS},
    }


def sample_captions(seed, n, held_out=False):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sc = sample_scene(rng, held_out=held_out)
        out.append((caption(sc), sc))
    return out


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    model_dir = os.path.join(here, "..", "..", "models", "tiny-sd")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "domain.json"), "w") as f:
        json.dump(domain_dict(), f, indent=2)
    write_tokenizer(os.path.join(model_dir, "tokenizer"))
    rng = random.Random(0)
    sheet = Image.new("RGB", (8 * 64, 4 * 64))
    for i in range(32):
        sc = sample_scene(rng, held_out=(i >= 28))
        print(caption(sc))
        sheet.paste(Image.fromarray(render(sc, rng)), ((i % 8) * 64, (i // 8) * 64))
    os.makedirs(os.path.join(here, "runs"), exist_ok=True)
    sheet.resize((8 * 128, 4 * 128), Image.NEAREST).save(os.path.join(here, "runs", "domain-preview.png"))
    print(len(vocab()), "tokens", encode("a red circle at the top left on a gray background")[:14])

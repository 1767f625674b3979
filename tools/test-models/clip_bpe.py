"""CLIP's byte-level BPE, written from its description, for two jobs: (1) cut the real vocabulary down to a
small one that CI text encoders can afford an embedding table for, and (2) tokenize the reference prompts in
Python so reference.json can state the ids the TypeScript tokenizer must produce from the same files.

The cut relies on how CLIP's vocab.json is ordered (checked in `load_clip`): ids 0-255 are the 256 byte
symbols, 256-511 the same symbols + "</w>", 512 + i is the result of merge i (merges.txt line i + 1, after the
`#version` line), then <|startoftext|> and <|endoftext|>. Keeping the first N merges therefore keeps exactly
the ids below 512 + N, and every kept merge only produces kept tokens: the result is a valid slow tokenizer.
"""
import json
import os
import re
import unicodedata

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77


def byte_symbols():
    """The byte -> printable character table of GPT-2/CLIP byte-level BPE: printable Latin-1 bytes map to
    themselves, the other 68 bytes to code points from 256 upward, in byte order."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def load_clip(folder):
    """vocab (token -> id) and merges (list of (a, b)) from a slow CLIP tokenizer folder; checks the order."""
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("#version"):
        raise ValueError("merges.txt does not start with a #version line")
    merges = [tuple(l.split(" ")) for l in lines[1:] if l]
    inv = {i: t for t, i in vocab.items()}
    for i, (a, b) in enumerate(merges):
        if inv.get(512 + i) != a + b:
            raise ValueError(f"vocab.json is not in merge order at merge {i} ({a} {b})")
    return vocab, merges


def truncate(vocab, merges, n_merges):
    """The first n_merges merges and the ids they can produce, the two specials renumbered right after."""
    inv = {i: t for t, i in vocab.items()}
    keep = 512 + n_merges
    small = {inv[i]: i for i in range(keep)}
    small[BOS] = keep
    small[EOS] = keep + 1
    return small, merges[:n_merges]


def write_tokenizer(folder, vocab, merges, pad_token=EOS, crlf=False, name_or_path="openai/clip-vit-large-patch14"):
    """The four slow-tokenizer files as transformers' CLIPTokenizer.save_pretrained writes them (vocab.json
    indented and sorted, merges.txt with its #version line). crlf=True rewrites every line ending as CRLF, as
    folders checked out on Windows are published."""
    os.makedirs(folder, exist_ok=True)

    def put(name, text):
        if crlf:
            text = text.replace("\n", "\r\n")
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)

    put("vocab.json", json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    put("merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    def added(content):
        return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    put("special_tokens_map.json", json.dumps({
        "bos_token": added(BOS), "eos_token": added(EOS), "pad_token": pad_token, "unk_token": added(EOS),
    }, indent=2) + "\n")
    put("tokenizer_config.json", json.dumps({
        "add_prefix_space": False,
        "bos_token": dict(added(BOS), __type="AddedToken"),
        "do_lower_case": True,
        "eos_token": dict(added(EOS), __type="AddedToken"),
        "errors": "replace",
        "model_max_length": MAX_LENGTH,
        "name_or_path": name_or_path,
        "pad_token": pad_token,
        "special_tokens_map_file": "./special_tokens_map.json",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": dict(added(EOS), __type="AddedToken"),
    }, indent=2) + "\n")


# CLIP's pre-tokenizer split. Python's re has no \p{L}/\p{N}: [^\W\d_] is "letters" and (?:[^\s\w]|_) is
# "neither space, letter nor number"; both agree with CLIP's classes on the prompts used here.
_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


class ClipBpe:
    def __init__(self, vocab, merges, pad_token=EOS):
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.bytes = byte_symbols()
        self.bos, self.eos = vocab[BOS], vocab[EOS]
        self.pad = vocab[pad_token]
        self.cache = {}

    def _word(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = list(zip(parts, parts[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):  # every non-overlapping occurrence, left to right
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def tokens(self, text):
        # the fast tokenizer's normalizer: NFC, whitespace runs to one space, lowercase (and strip, as CLIP does)
        text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()
        out = []
        for piece in _SPLIT.findall(text):
            out += self._word("".join(self.bytes[b] for b in piece.encode("utf-8")))
        return out

    def encode(self, text, max_length=MAX_LENGTH):
        """[BOS] + ids (cut to fit) + [EOS], padded to max_length with the pad id."""
        ids = [self.vocab[t] for t in self.tokens(text)][: max_length - 2]
        ids = [self.bos] + ids + [self.eos]
        return ids + [self.pad] * (max_length - len(ids))

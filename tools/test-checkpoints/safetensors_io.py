"""safetensors without the safetensors package: an 8-byte little-endian header length N, N bytes of JSON
({"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, offsets relative to the
first byte after the header), then the raw little-endian, row-major data.

Written the way the reference implementation (huggingface/safetensors, `safetensors/src/tensor.rs` `prepare` and
`Metadata`'s Serialize) lays a file out, so our files look like real ones byte for byte in structure:
- data sorted by dtype, widest first (its Dtype enum order, descending: I64 > F32 > I32 > BF16 > F16 > ...), then
  by name; this keeps every tensor aligned to its element size;
- the header lists `__metadata__` first, then the tensors in data order, compact JSON (no spaces);
- the header is padded with spaces to a multiple of 8 bytes.
"""
import json
import math
import mmap
import os
import struct

import torch

# safetensors' Dtype enum order (Rust derive(Ord)): the sort key, widest first
DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
               "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]
TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
               "I32": torch.int32}
ITEM_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}


def to_bytes(t, dtype):
    """The little-endian bytes of tensor t stored as `dtype` (float -> F16/BF16 rounds to nearest even)."""
    t = t.detach().to(TORCH_DTYPE[dtype]).contiguous()
    if dtype == "BF16":  # numpy has no bfloat16: the same 16 bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


class Writer:
    """Writes a file whose tensors are not all in memory at once: the header is laid out from (name, shape, dtype)
    alone, then `put` takes each tensor in data order (`order`), so a caller can build one component, write its
    tensors and free it before building the next. The file is written under a temporary name and renamed into place
    when every tensor is in, so a failed run leaves no truncated file behind."""

    def __init__(self, path, specs, metadata=None):
        specs = [(name, [int(d) for d in shape], dtype) for name, shape, dtype in specs]
        names = [s[0] for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("duplicate tensor names")
        specs.sort(key=lambda e: (-DTYPE_ORDER.index(e[2]), e[0]))
        header = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        for name, shape, dtype in specs:
            n = math.prod(shape) * ITEM_BYTES[dtype]
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
            offset += n
        self.header = header
        self.order = [s[0] for s in specs]
        self.path = path
        self._tmp = path + ".partial"
        self._next = 0
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        text += b" " * (-len(text) % 8)
        self._f = open(self._tmp, "wb")
        self._f.write(struct.pack("<Q", len(text)))
        self._f.write(text)

    def put(self, name, t):
        """Writes tensor `name`, which must be the next one in `order`, converted to its dtype."""
        want = self.order[self._next] if self._next < len(self.order) else None
        if name != want:
            raise ValueError(f"{name} written out of order (expected {want})")
        e = self.header[name]
        if list(t.shape) != e["shape"]:
            raise ValueError(f"{name}: shape {list(t.shape)}, the header says {e['shape']}")
        data = to_bytes(t, e["dtype"])
        assert len(data) == e["data_offsets"][1] - e["data_offsets"][0], name
        self._f.write(data)
        self._next += 1

    def close(self):
        self._f.close()
        if self._next != len(self.order):
            os.remove(self._tmp)
            raise ValueError(f"{self.path}: {len(self.order) - self._next} tensors were never written")
        os.replace(self._tmp, self.path)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:  # the error is the caller's; drop the half-written file
            self._f.close()
            if os.path.exists(self._tmp):
                os.remove(self._tmp)
        return False


def write(path, entries, metadata=None):
    """entries: iterable of (name, torch tensor, dtype). Tensors are converted one at a time while writing, so
    a multi-GB checkpoint needs no second copy in memory. Returns the header's tensor entries in data order."""
    entries = list(entries)
    tensors = {name: t for name, t, _ in entries}
    with Writer(path, [(name, list(t.shape), dtype) for name, t, dtype in entries], metadata) as w:
        for name in w.order:
            w.put(name, tensors[name])
    return {k: v for k, v in w.header.items() if k != "__metadata__"}


class Reader:
    """Header parsed on open; tensors come from a copy-on-write memory map (nothing is copied until used)."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "rb")
        (n,) = struct.unpack("<Q", self._f.read(8))
        self.header_bytes = n
        header = json.loads(self._f.read(n).decode("utf-8"))
        self.metadata = header.pop("__metadata__", {})
        self.entries = header
        self.data_start = 8 + n
        self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_COPY)

    def names(self):
        return sorted(self.entries)

    def raw(self, name):
        e = self.entries[name]
        b, end = e["data_offsets"]
        return self._mm[self.data_start + b:self.data_start + end]

    def tensor(self, name):
        e = self.entries[name]
        b, end = e["data_offsets"]
        count = (end - b) // ITEM_BYTES[e["dtype"]]
        t = torch.frombuffer(self._mm, dtype=TORCH_DTYPE[e["dtype"]], count=count, offset=self.data_start + b)
        return t.reshape(e["shape"])

    def close(self):
        self._mm.close()
        self._f.close()

"""A small safetensors reader and writer (Debian has no safetensors package).

The container (docs/model-format.md): 8 bytes N (uint64 little-endian), N bytes
of UTF-8 JSON header (name -> {"dtype", "shape", "data_offsets"}, plus an optional
"__metadata__" of string -> string), then the data buffer. Tensors are
little-endian, row-major. We write F32, F16 and BF16; we read those and F64
(BF16 comes back as float32: numpy has no bfloat16).
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
           "BF16": np.dtype("<u2")}  # raw bits, widened on reading


def to_bfloat16_bits(array):
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def from_bfloat16_bits(bits):
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4")
_ALIGN = 8  # header padded with spaces so the data buffer starts 8-byte aligned


def write(path, tensors, metadata=None, dtypes=None):
    """Writes tensors (name -> array-like) and string metadata. dtypes (name ->
    "F32" | "F16" | "BF16", rounded to nearest even) defaults to F32.

    Tensors are laid out in name order, without gaps; the header is padded with
    trailing spaces (allowed by the format) to an 8-byte boundary.
    """
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        dtype = (dtypes or {}).get(name, "F32")
        array = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        if dtype == "F16":
            array = array.astype("<f2")
        elif dtype == "BF16":
            array = to_bfloat16_bits(array)
        elif dtype != "F32":
            raise ValueError(f"tensor {name}: cannot write dtype {dtype}")
        blob = array.tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("safetensors metadata maps strings to strings")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % _ALIGN)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def read(path):
    """Returns (tensors: name -> numpy array in its stored dtype, metadata dict).

    Checks what a loader must: header within the file, every range inside the
    data buffer with the size its dtype and shape imply, no overlaps.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError(f"{path}: header length {length} exceeds the file")
    header = json.loads(data[8:8 + length].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    buffer = memoryview(data)[8 + length:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    ranges = []
    for name, entry in header.items():
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {entry.get('dtype')}")
        shape = [int(s) for s in entry["shape"]]
        begin, end = (int(o) for o in entry["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= begin <= end <= len(buffer) or end - begin != count * dtype.itemsize:
            raise ValueError(f"{path}: tensor {name} has bad data_offsets {[begin, end]}")
        ranges.append((begin, end, name))
        tensors[name] = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(shape).copy()
        if entry["dtype"] == "BF16":
            tensors[name] = from_bfloat16_bits(tensors[name])
    ranges.sort()
    for (_, end_a, a), (begin_b, _, b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise ValueError(f"{path}: tensors {a} and {b} overlap")
    return tensors, metadata

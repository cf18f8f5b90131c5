"""A small safetensors reader and writer (Debian has no safetensors package).

The container (docs/model-format.md): 8 bytes N (uint64 little-endian), N bytes
of UTF-8 JSON header (name -> {"dtype", "shape", "data_offsets"}, plus an optional
"__metadata__" of string -> string), then the data buffer. Tensors are
little-endian, row-major. We write F32 only; we read F32, F16 and F64.
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}
_ALIGN = 8  # header padded with spaces so the data buffer starts 8-byte aligned


def write(path, tensors, metadata=None):
    """Writes tensors (name -> array-like, stored as float32) and string metadata.

    Tensors are laid out in name order, without gaps; the header is padded with
    trailing spaces (allowed by the format) to an 8-byte boundary.
    """
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        array = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        blob = array.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(array.shape),
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
    ranges.sort()
    for (_, end_a, a), (begin_b, _, b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise ValueError(f"{path}: tensors {a} and {b} overlap")
    return tensors, metadata

#!/usr/bin/env python3
"""SmolLM2-135M-Instruct in other weight types, made from the shipped Q4_1 file with PyPI gguf (no f16 original is
available here, so each variant's quality is bounded by Q4_1's: these files exist to exercise every 32-element block
type on a real model, not to be better models).

Usage: make_variants.py MODELS_DIR [TYPE ...]   (TYPE in Q8_0 Q4_0 Q5_0 Q5_1; default all; run by fetch_models.sh)

For each TYPE writes MODELS_DIR/SmolLM2-135M-Instruct.TYPE.gguf:
  - header and metadata: the source's key/value bytes verbatim, except the u32 value of general.file_type, set to
    the llama.cpp file type of TYPE (LlamaFileType.MOSTLY_<TYPE>);
  - tensors in the source's order with the source's dims; every Q4_1 tensor dequantized with
    gguf.quants.dequantize and requantized with gguf.quants.quantize to TYPE; every other tensor (the F32 norms,
    the Q8_0 token embedding that is also the output head) copied byte for byte;
  - the source's alignment (general.alignment, else GGUF's default 32) for the data section and every tensor.
The GGUF v3 layout written here (header, KV section, tensor infos, padding, data) is the one in ggml's docs/gguf.md.

Deterministic (no randomness; the numpy quantizers are pure functions of their input), so a rerun gives the same
bytes. Idempotent: a stamp MODELS_DIR/.NAME.ok records (script hash, source size+mtime, output sha256+size+mtime);
a file whose stamp matches is skipped. Atomic: written to a temporary name in MODELS_DIR, renamed into place.
"""
import hashlib
import importlib.metadata
import os
import struct
import sys
import time

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

SOURCE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TARGETS = {"Q8_0": T.Q8_0, "Q4_0": T.Q4_0, "Q5_0": T.Q5_0, "Q5_1": T.Q5_1}


def out_name(type_name):
    return f"SmolLM2-135M-Instruct.{type_name}.gguf"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def stamp_inputs(src):
    st = os.stat(src)
    script = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
    return f"script={script} gguf={importlib.metadata.version('gguf')} " \
           f"numpy={np.__version__} source={st.st_size}:{int(st.st_mtime)}"


def up_to_date(path, stamp_path, inputs):
    if not (os.path.exists(path) and os.path.exists(stamp_path)):
        return False
    st = os.stat(path)
    want_tail = f"size={st.st_size} mtime={int(st.st_mtime)}"
    line = open(stamp_path).read().strip()
    return line.startswith(inputs + " ") and line.endswith(want_tail)


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def make_variant(reader, raw, target, path_tmp):
    """Writes the variant of `reader` (the source file, `raw` its bytes as a numpy uint8 memmap) to path_tmp."""
    align = 32
    if "general.alignment" in reader.fields:
        align = int(reader.fields["general.alignment"].contents())
    # KV section: from the end of the fixed header (magic u32, version u32, tensor_count u64, kv_count u64 = 24
    # bytes) to the first tensor info.
    kv_end = min(t.field.offset for t in reader.tensors)
    kv = bytearray(raw[24:kv_end].tobytes())
    ft = reader.fields["general.file_type"]
    assert ft.types == [gguf.GGUFValueType.UINT32], ft.types
    # A KV pair is: key (u64 length + bytes), value type u32, value; here the value is one u32.
    value_off = ft.offset + 8 + len(ft.name.encode()) + 4 - 24
    kv[value_off:value_off + 4] = struct.pack("<I", int(gguf.LlamaFileType[f"MOSTLY_{target.name}"]))

    version = int(reader.fields["GGUF.version"].contents())
    assert version == 3, f"source is GGUF v{version}, this writer writes v3"
    n_kv = int(reader.fields["GGUF.kv_count"].contents())
    header = struct.pack("<4sIQQ", b"GGUF", 3, len(reader.tensors), n_kv)

    # Tensor payloads and their infos; offsets are relative to the aligned start of the data section.
    infos, payloads, offset = [], [], 0
    for t in reader.tensors:
        dims = [int(d) for d in t.shape]  # GGUF order: ne0 (the row length) first
        if t.tensor_type == T.Q4_1:
            rows = int(np.prod(dims[1:]))
            x = dequantize(np.asarray(t.data).reshape(rows, -1), T.Q4_1)  # (rows, ne0) f32
            data = np.ascontiguousarray(quantize(x, target), dtype=np.uint8).tobytes()
            typ = target
        else:
            data = raw[t.data_offset:t.data_offset + t.n_bytes].tobytes()
            typ = t.tensor_type
        bs, ts = gguf.GGML_QUANT_SIZES[typ]
        assert len(data) == int(np.prod(dims)) // bs * ts, (t.name, len(data))
        offset = -(-offset // align) * align
        infos.append(gguf_string(t.name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                     + struct.pack("<IQ", int(typ), offset))
        payloads.append((offset, data))
        offset += len(data)

    with open(path_tmp, "wb") as f:
        f.write(header)
        f.write(kv)
        for info in infos:
            f.write(info)
        pos = f.tell()
        f.write(b"\0" * (-(-pos // align) * align - pos))
        start = f.tell()
        for off, data in payloads:
            f.write(b"\0" * (start + off - f.tell()))
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: make_variants.py MODELS_DIR [Q8_0 Q4_0 Q5_0 Q5_1]")
    models = sys.argv[1]
    wanted = sys.argv[2:] or list(TARGETS)
    for w in wanted:
        if w not in TARGETS:
            sys.exit(f"make_variants.py: unknown type {w!r} (one of {', '.join(TARGETS)})")
    src = os.path.join(models, SOURCE)
    if not os.path.exists(src):
        sys.exit(f"make_variants.py: {src} is missing: run `make models`")
    inputs = stamp_inputs(src)
    todo = [w for w in wanted if not up_to_date(os.path.join(models, out_name(w)),
                                                 os.path.join(models, f".{out_name(w)}.ok"), inputs)]
    if not todo:
        print("variants: up to date")
        return
    reader = gguf.GGUFReader(src)
    raw = np.memmap(src, dtype=np.uint8, mode="r")
    for w in todo:
        name = out_name(w)
        path = os.path.join(models, name)
        tmp = os.path.join(models, f".{name}.tmp.{os.getpid()}")
        t0 = time.time()
        try:
            make_variant(reader, raw, TARGETS[w], tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        st = os.stat(path)
        with open(os.path.join(models, f".{name}.ok"), "w") as f:
            f.write(f"{inputs} sha256={sha256_file(path)} size={st.st_size} mtime={int(st.st_mtime)}\n")
        print(f"variants: {name} ok ({st.st_size} bytes, {time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()

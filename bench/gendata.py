#!/usr/bin/env python3
"""Benchmark data generator (called by bench/run; numpy is used when importable).

    gendata.py weights OUTDIR SIZE      v1..v4 of a weights-like float16 file
    gendata.py model   OUTDIR SRC       v1..v4 derived from a real model.safetensors
    gendata.py small   OUTDIR COUNT     COUNT small files for status latency

Everything is deterministic (fixed seeds), so every run and every tool sees the same bytes.
Outputs go to OUTDIR together with meta.json; an OUTDIR whose meta.json matches is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import struct
import sys
from pathlib import Path

try:  # optional: fast, exact normal samples
    import numpy as np
except ImportError:  # pragma: no cover - exercised only without numpy
    np = None

MiB = 1 << 20
BLOCK = 16 * MiB
GEN_VERSION = 3
STD = 0.02  # typical scale of trained weights


# ---- weights-like float16 ------------------------------------------------------------------


class Normal16:
    """Streams float16 values drawn from N(0, STD^2), never repeating a block."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.block = 0
        if np is not None:
            self.rng = np.random.default_rng(seed)
        else:
            # Without numpy: 16 MiB of real gaussian float16 once, then every block gets its
            # low mantissa bytes XORed with a SHAKE stream keyed by (seed, block), so no two
            # blocks (and no two runs of chunks) are equal while the value distribution is kept.
            rnd = random.Random(seed)
            n = BLOCK // 2
            vals = [rnd.gauss(0.0, STD) for _ in range(n)]
            self.base = int.from_bytes(struct.pack(f"<{n}e", *vals), "little")
            self.low = int.from_bytes(b"\xff\x00" * n, "little")

    def take(self, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            want = min(BLOCK, nbytes - len(out))
            want += want & 1
            if np is not None:
                vals = self.rng.standard_normal(want // 2, dtype=np.float32) * np.float32(STD)
                out += vals.astype(np.float16).tobytes()
            else:
                key = f"{self.seed}:{self.block}".encode()
                noise = int.from_bytes(hashlib.shake_128(key).digest(BLOCK), "little")
                blk = (self.base ^ (noise & self.low)).to_bytes(BLOCK, "little")
                out += blk[:want]
            self.block += 1
        return bytes(out[:nbytes])


def weights(outdir: Path, size: int) -> dict:
    size -= size % 2
    gen = Normal16(1)
    v1 = outdir / "v1.bin"
    with open(v1, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(gen.take(n))
            left -= n
    # v2: 20 scattered, non-overlapping 1 MiB regions overwritten with fresh values.
    v2 = outdir / "v2.bin"
    shutil.copyfile(v1, v2)
    rnd = random.Random(2)
    regions: list[int] = []
    region = min(MiB, size // 64)
    while len(regions) < 20:
        off = rnd.randrange(region, size - region) & ~1
        if all(abs(off - o) >= 2 * region for o in regions):
            regions.append(off)
    fresh = Normal16(2)
    with open(v2, "r+b") as f:
        for off in sorted(regions):
            f.seek(off)
            f.write(fresh.take(region))
    # v3: 100 bytes inserted at offset 1000.
    v3 = outdir / "v3.bin"
    with open(v2, "rb") as src, open(v3, "wb") as dst:
        dst.write(src.read(1000))
        dst.write(Normal16(3).take(100))
        shutil.copyfileobj(src, dst, BLOCK)
    # v4: 64 MiB appended (a quarter of the file for tiny sizes).
    v4 = outdir / "v4.bin"
    shutil.copyfile(v3, v4)
    append = min(64 * MiB, size // 4) & ~1
    with open(v4, "ab") as f:
        gen4 = Normal16(4)
        left = append
        while left:
            n = min(BLOCK, left)
            f.write(gen4.take(n))
            left -= n
    return {
        "versions": [str(p.name) for p in (v1, v2, v3, v4)],
        "sizes": [p.stat().st_size for p in (v1, v2, v3, v4)],
        "regions": sorted(regions),
        "region_size": region,
        "append": append,
        "numpy": np is not None,
        "describe": [
            "v1: float16 ~ N(0, 0.02^2)",
            f"v2: 20 scattered {region // MiB if region >= MiB else region} "
            f"{'MiB' if region >= MiB else 'B'} regions overwritten",
            "v3: 100 bytes inserted at offset 1000",
            f"v4: {append // MiB} MiB appended",
        ],
    }


# ---- real model (safetensors) ----------------------------------------------------------------


def read_st(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hlen])
    return header, raw[8 + hlen :]


def write_st(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def perturb(buf: bytes, seed: int) -> bytes:
    """Adds ~0.1 % multiplicative noise to F32 values (a short fine-tune)."""
    if np is not None:
        a = np.frombuffer(buf, dtype="<f4").copy()
        rng = np.random.default_rng(seed)
        a *= (1.0 + 1e-3 * rng.standard_normal(a.size)).astype(np.float32)
        return a.tobytes()
    from array import array

    a = array("f", buf)
    rnd = random.Random(seed)
    for i in range(len(a)):
        a[i] *= 1.0 + 1e-3 * rnd.gauss(0.0, 1.0)
    return a.tobytes()


def to_bf16(buf: bytes) -> bytes:
    if np is not None:
        u = np.frombuffer(buf, dtype="<u4").astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
        return r.tobytes()
    out = bytearray(len(buf) // 2)  # truncation without numpy
    out[0::2] = buf[2::4]
    out[1::2] = buf[3::4]
    return bytes(out)


def model(outdir: Path, src: Path) -> dict:
    header, data = read_st(src)
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    layers = sorted({int(m.group(1)) for n in names if (m := re.search(r"layer\.(\d+)\.", n))})
    last2 = {str(x) for x in layers[-2:]}
    v1 = outdir / "v1.safetensors"
    shutil.copyfile(src, v1)

    # v2: the last two transformer layers' tensors perturbed (partial fine-tune).
    buf = bytearray(data)
    touched = 0
    for i, n in enumerate(names):
        m = re.search(r"layer\.(\d+)\.", n)
        if m and m.group(1) in last2 and header[n]["dtype"] == "F32":
            a, b = header[n]["data_offsets"]
            buf[a:b] = perturb(bytes(buf[a:b]), 100 + i)
            touched += b - a
    h2 = dict(header)
    if meta is not None:
        h2["__metadata__"] = meta
    write_st(outdir / "v2.safetensors", h2, bytes(buf))

    # v3: a new tensor added (the header grows, so every absolute offset shifts).
    hidden = next((header[n]["shape"][-1] for n in names if n.endswith("LayerNorm.weight")), 384)
    if np is not None:
        extra = (np.random.default_rng(7).standard_normal(hidden * hidden, dtype=np.float32)
                 * np.float32(STD)).tobytes()
    else:  # float32 values whose high halves are gaussian float16 bit patterns
        halves = Normal16(7).take(hidden * hidden * 2)
        extra = b"".join(b"\0\0" + halves[i : i + 2] for i in range(0, len(halves), 2))
    end = len(buf)
    h3 = dict(header)
    h3["adapter.dense.weight"] = {"dtype": "F32", "shape": [hidden, hidden],
                                  "data_offsets": [end, end + len(extra)]}
    if meta is not None:
        h3["__metadata__"] = meta
    data3 = bytes(buf) + extra
    write_st(outdir / "v3.safetensors", h3, data3)

    # v4: bf16 cast of v3 (every F32 tensor halves; all offsets change).
    h4: dict = {}
    parts = []
    pos = 0
    for n in sorted((k for k in h3 if k != "__metadata__"),
                    key=lambda k: h3[k]["data_offsets"][0]):
        a, b = h3[n]["data_offsets"]
        chunk = data3[a:b]
        dtype = h3[n]["dtype"]
        if dtype == "F32":
            chunk, dtype = to_bf16(chunk), "BF16"
        h4[n] = {"dtype": dtype, "shape": h3[n]["shape"], "data_offsets": [pos, pos + len(chunk)]}
        parts.append(chunk)
        pos += len(chunk)
    if meta is not None:
        h4["__metadata__"] = meta
    write_st(outdir / "v4.safetensors", h4, b"".join(parts))
    files = [outdir / f"v{i}.safetensors" for i in range(1, 5)]
    return {
        "source": str(src),
        "versions": [p.name for p in files],
        "sizes": [p.stat().st_size for p in files],
        "tensors": len(names),
        "perturbed_layers": sorted(last2),
        "perturbed_bytes": touched,
        "numpy": np is not None,
        "describe": [
            "v1: model.safetensors as shipped",
            f"v2: layers {', '.join(sorted(last2))} perturbed ({touched / MiB:.1f} MiB of tensors)",
            f"v3: tensor adapter.dense.weight [{hidden}, {hidden}] F32 added (header grows)",
            "v4: v3 cast to bf16",
        ],
    }


# ---- many small files ------------------------------------------------------------------------


def small(outdir: Path, count: int) -> dict:
    rnd = random.Random(5)
    total = 0
    for i in range(count):
        d = outdir / "small" / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        n = rnd.randrange(1024, 64 * 1024)
        (d / f"f{i:04d}.bin").write_bytes(rnd.randbytes(n))
        total += n
    return {"count": count, "bytes": total}


def main() -> None:
    kind, outdir = sys.argv[1], Path(sys.argv[2])
    arg = sys.argv[3]
    want = {"kind": kind, "arg": arg, "gen": GEN_VERSION, "numpy": np is not None}
    meta_path = outdir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("want") == want:
            print(json.dumps(meta))
            return
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    if kind == "weights":
        info = weights(outdir, int(arg))
    elif kind == "model":
        info = model(outdir, Path(arg))
    elif kind == "small":
        info = small(outdir, int(arg))
    else:
        raise SystemExit(f"unknown kind {kind}")
    meta = {"want": want, **info}
    meta_path.write_text(json.dumps(meta, indent=1))
    os.sync()
    print(json.dumps(meta))


if __name__ == "__main__":
    main()

"""The cuda-emu instruction semantics (tilec_emu/isa.h) vs the real GPU, bit for bit, in one short process.

Builds benchmarks/gpu/emu_isa_check.cu with nvcc (sm_90 unless --arch), runs ldmatrix x1/x2/x4 (.trans),
mma.sync m16n8k16 f16/bf16 and m16n8k32 e4m3 (sm_89+), __shfl_{,up_,down_,xor_}sync at widths 32/16/8, and
f32 -> f16/bf16/e4m3/e5m2 (satfinite) encodes and all-pattern decodes on the GPU; runs the same inputs through
isa.h on the CPU (tests/backends/cuda_emu/isa_harness.py, the unit tests' own wrappers); prints one line per
case and writes emu_isa_check.json to --out or $OUT. mma inputs are small integers (every sum exact), so the
results must agree to the bit. NaN encodings are compared as "both NaN" and the differing bit patterns counted.
Without a GPU: compiles the .cu (when nvcc exists), says so, exits 0. Exit 1 when any case differs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "backends" / "cuda_emu"))
import isa_harness as H  # noqa: E402

CU = Path(__file__).with_suffix(".cu")
ARGS, WIDTHS, MODES = [0, 1, 3, 5, 8, 17], [32, 16, 8], ["idx", "up", "down", "bfly"]


def f16_bits(x, kind):
    return H.encode16(kind, np.asarray(x, np.float32))


def inputs(rng):
    smem = np.arange(256, dtype=np.uint16) * 7 + 3          # distinct 16-bit ids
    addr = (rng.permutation(32) * 16).astype(np.uint32)       # each lane a scattered 16-byte row
    mats = []
    for kind in ("f16", "bf16", "e4m3"):
        a = rng.integers(-8, 9, (32, 4 * (2 if kind != "e4m3" else 4))).astype(np.float32)
        b = rng.integers(-8, 9, (32, 2 * (2 if kind != "e4m3" else 4))).astype(np.float32)
        if kind == "e4m3":
            pa, pb = H.encode8("e4m3", a).astype(np.uint32), H.encode8("e4m3", b).astype(np.uint32)
            ra = pa[:, 0::4] | pa[:, 1::4] << 8 | pa[:, 2::4] << 16 | pa[:, 3::4] << 24
            rb = pb[:, 0::4] | pb[:, 1::4] << 8 | pb[:, 2::4] << 16 | pb[:, 3::4] << 24
        else:
            pa, pb = f16_bits(a, kind).astype(np.uint32), f16_bits(b, kind).astype(np.uint32)
            ra, rb = pa[:, 0::2] | pa[:, 1::2] << 16, pb[:, 0::2] | pb[:, 1::2] << 16
        c = rng.integers(-64, 65, (32, 4)).astype(np.float32)
        mats.append((ra.astype(np.uint32), rb.astype(np.uint32), c))
    vals = rng.integers(0, 1 << 32, 32, dtype=np.uint64).astype(np.uint32)
    scaled = rng.standard_normal(1 << 16) * 2.0 ** rng.integers(-30, 20, 1 << 16)
    x = np.concatenate([scaled.astype(np.float32),
                        rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32).view(np.float32),
                        np.array([0, -0.0, np.inf, -np.inf, np.nan, 65504, 65520, 448, 464, 57344, 61440,
                                  2.0 ** -24, 2.0 ** -25, 2.0 ** -9, 2.0 ** -10, 2.0 ** -17, 1e-45], np.float32)])
    return smem, addr, mats, vals, x.astype(np.float32)


def emulate(smem, addr, mats, vals, x):
    ldm = []
    for trans in (False, True):
        for num in (1, 2, 4):
            out, n = H.ldmatrix(num, trans, smem.view(np.uint8), addr)
            ldm.append(out)
    mma = [H.mma(16, k, a, b, c) for k, (a, b, c) in zip(("f16", "bf16"), mats)]
    mma.append(H.mma(32, "e4m3", *mats[2]))
    sh = np.zeros((4, 3, len(ARGS), 32), np.uint32)
    ones = np.ones(32, np.uint8)
    for m, mode in enumerate(MODES):
        for w, width in enumerate(WIDTHS):
            for a, arg in enumerate(ARGS):
                sh[m, w, a] = H.shfl(mode, vals, np.full(32, arg, np.uint32), H.shfl_c(mode, width), ones)[0]
    enc = np.stack([H.encode16("f16", x), H.encode16("bf16", x), H.encode8("e4m3", x), H.encode8("e5m2", x)])
    p16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    p8 = np.arange(256, dtype=np.uint32).astype(np.uint8)
    return dict(ldm=np.stack(ldm), mma=np.stack(mma), shfl=sh, enc=enc.astype(np.uint32),
                dec16=np.stack([H.decode16("f16", p16), H.decode16("bf16", p16)]),
                dec8=np.stack([H.decode8("e4m3", p8), H.decode8("e5m2", p8)]))


def compare(name, gpu, emu, nan_of=None):
    """(rows, differing elements). nan_of: decode function telling which encodings are NaN."""
    g, e = np.asarray(gpu), np.asarray(emu)
    if g.dtype == np.float32:
        gn, en = np.isnan(g), np.isnan(e)
        bad = (g.view(np.uint32) != e.view(np.uint32)) & ~(gn & en)
        nan_diff = int(((g.view(np.uint32) != e.view(np.uint32)) & gn & en).sum())
    else:
        bad = g != e
        nan_diff = 0
        if nan_of is not None:
            both = nan_of(g) & nan_of(e)
            nan_diff = int((bad & both).sum())
            bad &= ~both
    return {"case": name, "elements": int(g.size), "mismatches": int(bad.sum()), "nan_bits_differ": nan_diff,
            "first": [int(i) for i in np.flatnonzero(bad.ravel())[:4]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for emu_isa_check.json")
    ap.add_argument("--arch", default="sm_90")
    args = ap.parse_args()
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        print("emu_isa_check: nvcc not found: nothing compiled, no GPU check run")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="emu_isa_"))
    exe = tmp / "emu_isa_check"
    proc = subprocess.run([nvcc, "-std=c++17", "-O1", f"-arch={args.arch}", str(CU), "-o", str(exe)],
                          capture_output=True, text=True)
    if proc.returncode:
        print(f"emu_isa_check: nvcc failed:\n{proc.stderr[-3000:]}")
        return 1
    has_gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0 if shutil.which(
        "nvidia-smi") else False
    if not has_gpu:
        print(f"emu_isa_check: compiled {CU.name} for {args.arch}; no GPU present, nothing run")
        return 0
    smem, addr, mats, vals, x = inputs(np.random.default_rng(14))
    with open(tmp / "in.bin", "wb") as f:
        f.write(np.uint32(x.size).tobytes() + smem.tobytes() + addr.tobytes())
        for a, b, c in mats:
            f.write(a.tobytes() + b.tobytes() + c.tobytes())
        f.write(vals.tobytes() + x.tobytes())
    run = subprocess.run([str(exe), str(tmp / "in.bin"), str(tmp / "out.bin")], capture_output=True, text=True,
                         timeout=120)
    if run.returncode:
        print(f"emu_isa_check: GPU run failed (rc {run.returncode}): {run.stderr[-2000:]}")
        return 1
    sm = run.stdout.strip()
    raw = np.fromfile(tmp / "out.bin", np.uint8)
    sizes = dict(ldm=(np.uint32, (6, 32, 4)), mma=(np.float32, (3, 32, 4)), shfl=(np.uint32, (4, 3, len(ARGS), 32)),
                 enc=(np.uint32, (4, x.size)), dec16=(np.float32, (2, 1 << 16)), dec8=(np.float32, (2, 256)))
    gpu, off = {}, 0
    for k, (dt, shape) in sizes.items():
        n = int(np.prod(shape)) * 4
        gpu[k] = raw[off:off + n].view(dt).reshape(shape)
        off += n
    emu = emulate(smem, addr, mats, vals, x)
    rows = []
    for i, (trans, num) in enumerate((t, n) for t in (False, True) for n in (1, 2, 4)):
        rows.append(compare(f"ldmatrix.x{num}{'.trans' if trans else ''}", gpu["ldm"][i], emu["ldm"][i]))
    names = ["mma.m16n8k16.f16", "mma.m16n8k16.bf16", "mma.m16n8k32.e4m3"]
    fp8_mma = int(sm.removeprefix("sm_") or 0) >= 89
    for i, name in enumerate(names[:3 if fp8_mma else 2]):
        rows.append(compare(name, gpu["mma"][i], emu["mma"][i]))
    for m, mode in enumerate(MODES):
        for w, width in enumerate(WIDTHS):
            rows.append(compare(f"shfl.{mode}.w{width}", gpu["shfl"][m, w], emu["shfl"][m, w]))
    nan16 = {"f16": lambda v: np.isnan(H.decode16("f16", v.astype(np.uint16))),
             "bf16": lambda v: np.isnan(H.decode16("bf16", v.astype(np.uint16))),
             "e4m3": lambda v: np.isnan(H.decode8("e4m3", v.astype(np.uint8))),
             "e5m2": lambda v: np.isnan(H.decode8("e5m2", v.astype(np.uint8)))}
    for i, kind in enumerate(("f16", "bf16", "e4m3", "e5m2")):
        rows.append(compare(f"cvt.f32->{kind}", gpu["enc"][i], emu["enc"][i], nan16[kind]))
    for i, kind in enumerate(("f16", "bf16")):
        rows.append(compare(f"cvt.{kind}->f32 (all)", gpu["dec16"][i], emu["dec16"][i]))
    for i, kind in enumerate(("e4m3", "e5m2")):
        rows.append(compare(f"cvt.{kind}->f32 (all)", gpu["dec8"][i], emu["dec8"][i]))
    print(f"emu_isa_check on {sm}: GPU vs emulator (isa.h), bit for bit")
    print(f"{'case':28s} {'elements':>9s} {'mismatch':>9s} {'NaN bits':>9s}")
    for r in rows:
        print(f"{r['case']:28s} {r['elements']:9d} {r['mismatches']:9d} {r['nan_bits_differ']:9d}"
              + (f"  first at {r['first']}" if r["mismatches"] else ""))
    bad = sum(r["mismatches"] for r in rows)
    print(f"emu_isa_check: {'OK' if not bad else f'{bad} MISMATCHES'} ({len(rows)} cases)")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "emu_isa_check.json").write_text(json.dumps({"device": sm, "rows": rows}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""The scalar types of tilec and their facts, in one table.

Every layer (frontend, verifier, interpreter, backends) asks this module about a dtype instead of keeping
its own table. A dtype is spelled by its canonical name, a plain string such as ``"float16"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DTypeInfo:
    name: str
    bits: int
    kind: str            # "float", "int", "uint" or "bool"
    short: str           # suffix used by the IR text for constants, e.g. 1.5:f16
    numpy: str           # numpy dtype of storage ("uint16" holds bfloat16 bits, "uint8" float8 bits)


DTYPES: dict[str, DTypeInfo] = {
    "float32": DTypeInfo("float32", 32, "float", "f32", "float32"),
    "float16": DTypeInfo("float16", 16, "float", "f16", "float16"),
    "bfloat16": DTypeInfo("bfloat16", 16, "float", "bf16", "uint16"),
    "float8_e4m3": DTypeInfo("float8_e4m3", 8, "float", "f8e4m3", "uint8"),
    "float64": DTypeInfo("float64", 64, "float", "f64", "float64"),
    "int8": DTypeInfo("int8", 8, "int", "i8", "int8"),
    "int16": DTypeInfo("int16", 16, "int", "i16", "int16"),
    "int32": DTypeInfo("int32", 32, "int", "i32", "int32"),
    "int64": DTypeInfo("int64", 64, "int", "i64", "int64"),
    "uint8": DTypeInfo("uint8", 8, "uint", "u8", "uint8"),
    "uint16": DTypeInfo("uint16", 16, "uint", "u16", "uint16"),
    "uint32": DTypeInfo("uint32", 32, "uint", "u32", "uint32"),
    "bool": DTypeInfo("bool", 8, "bool", "bool", "bool"),
}

# Other spellings users write (TileLang and torch names) -> canonical name.
ALIASES: dict[str, str] = {
    "float": "float32", "fp32": "float32", "half": "float16", "fp16": "float16",
    "bf16": "bfloat16", "float8_e4m3fn": "float8_e4m3", "fp8": "float8_e4m3", "e4m3": "float8_e4m3",
    "double": "float64", "int": "int32", "uint": "uint32",
}

INDEX = "int32"  # dtype of loop variables, block indices and symbolic dimensions


def canonical(name: str) -> str:
    """Return the canonical dtype name for ``name`` or raise ValueError listing the known ones."""
    name = ALIASES.get(name, name)
    if name not in DTYPES:
        known = ", ".join(sorted(DTYPES))
        raise ValueError(f"unknown dtype '{name}' (known: {known})")
    return name


def info(name: str) -> DTypeInfo:
    return DTYPES[name]


def is_float(name: str) -> bool:
    return DTYPES[name].kind == "float"


def is_int(name: str) -> bool:
    return DTYPES[name].kind in ("int", "uint")


def is_bool(name: str) -> bool:
    return name == "bool"


def itemsize(name: str) -> int:
    return max(1, DTYPES[name].bits // 8)


def storage_numpy(name: str) -> np.dtype:
    """The numpy dtype an array of ``name`` is stored in (bit patterns for bfloat16 and float8)."""
    return np.dtype(DTYPES[name].numpy)


def from_short(short: str) -> str:
    for d in DTYPES.values():
        if d.short == short:
            return d.name
    raise ValueError(f"unknown dtype suffix '{short}'")


def promote(a: str, b: str) -> str:
    """Result dtype of a binary operation on ``a`` and ``b`` (both already typed, not literals).

    float beats int; between floats the wider wins, and float16 with bfloat16 gives float32;
    between integers the wider wins, signed on a tie.
    """
    if a == b:
        return a
    ia, ib = DTYPES[a], DTYPES[b]
    if ia.kind == "bool":
        return b
    if ib.kind == "bool":
        return a
    if ia.kind == "float" and ib.kind != "float":
        return a
    if ib.kind == "float" and ia.kind != "float":
        return b
    if ia.kind == "float":
        if ia.bits == ib.bits:
            return "float32"
        return a if ia.bits > ib.bits else b
    if ia.bits != ib.bits:
        return a if ia.bits > ib.bits else b
    return a if ia.kind == "int" else b

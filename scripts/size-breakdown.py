#!/usr/bin/env python3
"""Where the bytes of a native library are: sums the sizes of its code and read-only data symbols
by the crate (or C library) they come from, from `nm -S -C` on an unstripped build.

A generic function is counted in the crate that defines it (`serde_json::de::from_slice<T>` is
serde_json's even when T is thudo's), as cargo-bloat does. C symbols are named by prefix
(sqlite3, ring's assembly). Usage: size-breakdown.py LIBRARY [NM]"""
import re
import subprocess
import sys
from collections import Counter

C_PREFIXES = [
    ("sqlite3", "sqlite (C)"),
    ("fts5", "sqlite (C)"),
    ("ring_core", "ring (C/asm)"),
    ("ecp_nistz256", "ring (C/asm)"),
    ("aes_", "ring (C/asm)"),
    ("ChaCha20", "ring (C/asm)"),
    ("gcm_", "ring (C/asm)"),
    ("sha", "ring (C/asm)"),
    ("x25519", "ring (C/asm)"),
    ("bn_", "ring (C/asm)"),
    ("LIMBS", "ring (C/asm)"),
    ("p256_", "ring (C/asm)"),
    ("uniffi_", "uniffi scaffolding (thudo_ffi exports)"),
    ("UNIFFI_META", "uniffi metadata (read by uniffi-bindgen)"),
    ("ffi_thudo", "uniffi scaffolding (thudo_ffi exports)"),
]

def crate_of(name: str) -> str:
    if name.startswith("<"):
        # <T as Trait>::f: the implementing type's crate, like cargo-bloat.
        inner = name[1:]
        m = re.match(r"&?(?:mut\s+)?(?:dyn\s+)?\[?\(?([A-Za-z_][A-Za-z0-9_]*)::", inner)
        if m:
            return m.group(1)
        m = re.search(r"\bas\s+([A-Za-z_][A-Za-z0-9_]*)::", inner)
        if m:
            return m.group(1)
        return "other"
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    for prefix, crate in C_PREFIXES:
        if name.startswith(prefix):
            return crate
    # The library's only other C code is SQLite, whose static functions carry no prefix.
    return "sqlite (C)"


def main() -> None:
    lib = sys.argv[1]
    nm = sys.argv[2] if len(sys.argv) > 2 else "nm"
    out = subprocess.run([nm, "-S", "-C", "--size-sort", lib], capture_output=True, text=True, check=True).stdout
    sizes: Counter = Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] not in "tTrR":
            continue
        sizes[crate_of(parts[3])] += int(parts[1], 16)
    total = sum(sizes.values())
    print(f"{'crate':40} {'bytes':>10} {'share':>6}")
    for crate, size in sizes.most_common(30):
        print(f"{crate:40} {size:10,d} {100 * size / total:5.1f}%")
    rest = sum(s for _, s in sizes.most_common()[30:])
    print(f"{'(the rest)':40} {rest:10,d}")
    print(f"{'code and read-only data symbols':40} {total:10,d}")


if __name__ == "__main__":
    main()

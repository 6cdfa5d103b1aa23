#!/usr/bin/env python3
"""Checks that every loadable segment of each ELF shared library is aligned to 16 KB.

Google Play requires 16 KB page support of apps targeting Android 15+: a native library whose
LOAD segments are aligned to 4 KB fails to load on a 16 KB-page device. This reads the ELF
program headers directly (32- and 64-bit, either byte order), so it runs anywhere Python does.

    scripts/check-elf-alignment.py LIB.so [LIB.so ...]
"""
import struct
import sys

PAGE = 16 * 1024
PT_LOAD = 1


def load_alignments(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    aligns = []
    for i in range(phnum):
        at = phoff + i * phentsize
        p_type, = struct.unpack_from(order + "I", data, at)
        if p_type != PT_LOAD:
            continue
        if is64:
            p_offset, p_vaddr = struct.unpack_from(order + "QQ", data, at + 8)
            p_align, = struct.unpack_from(order + "Q", data, at + 48)
        else:
            p_offset, p_vaddr = struct.unpack_from(order + "II", data, at + 4)
            p_align, = struct.unpack_from(order + "I", data, at + 28)
        aligns.append((p_align, p_offset, p_vaddr))
    return aligns


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        segments = load_alignments(path)
        bad = [s for s in segments if s[0] < PAGE or (s[1] - s[2]) % PAGE != 0]
        if not segments or bad:
            failed = True
            print(f"{path}: NOT 16 KB aligned: " + ", ".join(f"align {a:#x}" for a, _, _ in segments))
        else:
            print(f"{path}: {len(segments)} LOAD segments, 16 KB aligned")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

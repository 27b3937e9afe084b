#!/usr/bin/python3
"""Deterministic test data for the qcow2x tests.

usage: gen-data.py SEED SIZE OUT [MODE]

MODE (default "mix"):
  random  incompressible random bytes
  mix     4 KiB chunks, each chosen at random: random bytes, zeros, a short
          repeated pattern, low-entropy text-like bytes, or half random /
          half zero.  Whole zero clusters appear too (runs of zero chunks),
          so qemu-img convert leaves some clusters unallocated and
          qemu-img convert -c produces compressed clusters of many sizes.
  text    low-entropy bytes (compress well, never all zero)
SIZE accepts K/M suffixes (binary).
"""
import random
import sys


def parse_size(s):
    mult = 1
    if s[-1] in "kK":
        mult, s = 1024, s[:-1]
    elif s[-1] in "mM":
        mult, s = 1024 * 1024, s[:-1]
    return int(s) * mult


def low_entropy(rng, alpha, n):
    table = bytes(alpha[i % len(alpha)] for i in range(256))
    return rng.randbytes(n).translate(table)


def chunk(rng, mode, n):
    if mode == "random":
        return rng.randbytes(n)
    if mode == "text":
        return low_entropy(rng, bytes(rng.sample(range(33, 127), 12)), n)
    r = rng.random()
    if r < 0.30:
        return rng.randbytes(n)
    if r < 0.50:
        return bytes(n)
    if r < 0.65:
        pat = rng.randbytes(rng.randint(1, 64))
        return (pat * (n // len(pat) + 1))[:n]
    if r < 0.85:
        return low_entropy(rng, bytes(rng.sample(range(1, 256), rng.randint(2, 24))), n)
    h = n // 2
    return rng.randbytes(h) + bytes(n - h)


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    seed = int(sys.argv[1])
    size = parse_size(sys.argv[2])
    out = sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) == 5 else "mix"
    if mode not in ("random", "mix", "text"):
        sys.exit("gen-data.py: unknown mode " + mode)
    rng = random.Random(seed)
    with open(out, "wb") as f:
        pos = 0
        zero_run = 0
        while pos < size:
            n = min(4096, size - pos)
            if mode == "mix" and zero_run == 0 and rng.random() < 0.005:
                zero_run = rng.randint(16, 96)   # 64-384 KiB of zeros
            if zero_run > 0:
                zero_run -= 1
                data = bytes(n)
            else:
                data = chunk(rng, mode, n)
            f.write(data)
            pos += n


if __name__ == "__main__":
    main()

"""Near-duplicate detection: character 5-gram shingles, one-permutation MinHash and LSH.

Vectorised numpy, deterministic across processes and runs (no use of Python's salted
``hash()``; threads only split the work), no import-time work. ``datasketch`` is not used.

How ``near_duplicate_pairs`` works (texts go through in chunks of 2048, so the working
memory is a few MB plus ~180 bytes of sketch per text, and ~100 MB of shingle sets while
verifying):

1. Normalise a whole chunk at once as UTF-8 bytes (``bytes.translate`` + numpy): ASCII
   lowercased, apostrophes dropped ("don't" == "dont"), every other ASCII punctuation,
   whitespace or control character (and U+2000-U+206F punctuation, no-break space) becomes a
   space, runs of spaces collapse, ends are stripped. Non-ASCII letters are kept (lowercased).
2. The shingles of a text are its overlapping 5-byte windows. For exact set work each is
   packed into a 40-bit integer (injective: ``jaccard`` and the verification are exact). A
   non-empty text shorter than 5 bytes has a single shingle, itself.
3. One-permutation MinHash (Li, Owen & Zhang 2012) with rotation densification (Shrivastava
   & Li 2014): every window is hashed once to 32 bits (two unaligned 4-byte loads and a
   murmur-style mix); the top bits pick one of ``num_perm`` bins, the bin keeps its minimum
   (``np.minimum.at``). Cost O(shingles) instead of O(shingles x num_perm); per bin,
   P[two signatures agree] = Jaccard, as with classic MinHash.
4. Texts with an identical shingle multiset (exact duplicates after normalisation) are
   collapsed to one representative: they cost no LSH or verification work however many.
5. LSH: 18 bands of 8 strided bins for the default threshold (``_lsh_params``). Buckets are
   found with a plain numpy sort of (band hash | row) words, never with dicts.
6. Each band's candidates are filtered by a signature estimate (4-bit b-bit MinHash: XOR
   and popcount over 9 words per pair) at threshold - 0.08, then the survivors are VERIFIED
   WITH THE EXACT JACCARD of their shingle sets, which is the similarity reported.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_NUM_PERM",
    "DEFAULT_THRESHOLD",
    "MIN_SHINGLES",
    "SHINGLE_SIZE",
    "MinHasher",
    "cross_pairs",
    "group_pairs",
    "jaccard",
    "jaccard_pairs",
    "near_duplicate_pairs",
    "normalize_for_shingles",
    "shingles",
]

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
_T = TypeVar("_T")

# Jaccard threshold for "near duplicate" on character 5-gram sets of normalised text.
# Measured on support-ticket chats of 150-600 characters (tests/test_minhash.py,
# bench/near_dup_peer.py): case/punctuation/whitespace changes give J = 1; a typo fix >= 0.95;
# one word changed, added or removed 0.86-0.97; two words changed 0.75 (150 chars) to 0.92
# (400 chars); a 45-character sentence appended 0.78 (150 chars) to 0.91 (400 chars). Short
# texts lose the most, since every edited word removes ~len(word) + 4 of their few shingles.
# Distinct conversations that share a template, a greeting or a boilerplate answer stay
# below ~0.6 (e.g. "Hi, my order #4821 hasn't arrived, can you check?" vs "Hi, my order
# #9913 was damaged, I want a refund." is 0.11). 0.7 sits in that gap: 0.8 would lose the
# two-word edits and appended sentences of short texts, 0.6 would reach templated rows.
DEFAULT_THRESHOLD: float = 0.7

#: Number of MinHash bins (the signature width): 18 LSH bands of 8 bins for the default
#: threshold (see ``_lsh_params``).
DEFAULT_NUM_PERM: int = 144

#: Characters (UTF-8 bytes) per shingle.
SHINGLE_SIZE: int = 5

#: A text with fewer distinct shingles than this (normalised length < 7 bytes) pairs only with
#: texts that have exactly the same shingle set, so "ok", "yes" or "" never pair with
#: everything. A text with no shingle at all (empty after normalisation) never pairs.
MIN_SHINGLES: int = 3

_CHUNK = 2048  # texts per chunk (arrays of a few MB stay in cache; a (text, code) key fits)
_CHUNK_CHARS = 1 << 21  # and characters per chunk, for long texts
_SENTINEL = np.uint32(0xFFFFFFFF)  # empty OPH bin (real values are 31-bit)
_ROT = np.uint32(0x9E3779B1)  # densification offset per bin of distance
_SHORT_TAG = np.uint64(1 << 48)  # tags the code of a text shorter than SHINGLE_SIZE
_MASK40 = np.uint64((1 << 40) - 1)
_CODE_BITS = 49  # exact shingle codes are < 2**49 (40-bit 5-grams; tagged short texts)


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


# ----------------------------------------------------------------------------- hashing


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _fmix64(x: U64) -> U64:
    """MurmurHash3's 64-bit finaliser: a bijection on uint64 (in place on a copy)."""
    h = x.copy()
    tmp = np.empty_like(h)
    for shift, mult in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        np.right_shift(h, np.uint64(shift), out=tmp)
        np.bitwise_xor(h, tmp, out=h)
        np.multiply(h, np.uint64(mult), out=h)
    np.right_shift(h, np.uint64(33), out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    return h


# ------------------------------------------------------------------------ normalisation


def _build_table() -> bytes:
    """bytes.translate table: ASCII letters lowercased, digits kept, every other ASCII byte
    (punctuation, whitespace, controls) a space, UTF-8 multi-byte sequences kept, 0 kept (it
    separates texts). Apostrophes are deleted separately ("don't" and "dont" match)."""
    table = bytearray(b" " * 256)
    for c in range(128, 256):
        table[c] = c
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    table[0] = 0
    return bytes(table)


_TABLE: bytes | None = None
_DELETE = b"'`"


def _table() -> bytes:
    global _TABLE
    if _TABLE is None:
        _TABLE = _build_table()
    return _TABLE


@dataclass
class _Normalized:
    """Normalised texts of a chunk in one byte buffer, texts separated by a 0 byte and the
    buffer followed by 8 zero bytes (so unaligned 8-byte reads never run off the end).
    Text i is buf[starts[i] : starts[i] + lengths[i]]."""

    buf: U8  # the buffer, padding included
    size: int  # bytes before the padding
    starts: I64
    lengths: I64


def _empty_normalized(n: int) -> _Normalized:
    return _Normalized(np.zeros(8, np.uint8), 0, np.zeros(n, np.int64), np.zeros(n, np.int64))


def _normalize_chunk(texts: Sequence[str]) -> _Normalized:
    n = len(texts)
    if n == 0:
        return _empty_normalized(0)
    # ASCII is lowercased by the byte table; only other texts need str.lower().
    joined = "\x00".join([t if t.isascii() else t.lower() for t in texts])
    raw = joined.encode("utf-8", "surrogatepass").translate(_table(), _DELETE)
    b = np.frombuffer(raw, dtype=np.uint8)
    if not joined.isascii():
        b = b.copy()
        _map_unicode_punctuation(b)
        b = b[b != 1]
    if b.size == 0:
        return _empty_normalized(n)
    # Drop every space that follows a space or a separator (or starts the buffer): runs
    # collapse to one space and texts lose their leading spaces.
    drop = b == 32
    drop[1:] &= (b[:-1] & np.uint8(0xDF)) == 0
    keep = ~drop
    size = int(np.count_nonzero(keep))
    buf = np.zeros(size + 8, dtype=np.uint8)
    buf[:size] = b[keep]
    seps = np.flatnonzero(buf[:size] == 0)
    if seps.size != n - 1:  # some text contains "\x00" itself
        return _normalize_chunk([t.replace("\x00", " ") for t in texts])
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = seps + 1
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = seps
    ends[-1] = size
    # A text may still end with one space (from its final punctuation): leave it in the
    # buffer but outside the text.
    trailing = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 32)
    return _Normalized(buf, size, starts, ends - starts - trailing)


def _map_unicode_punctuation(b: U8) -> None:
    """U+2000..U+206F (E2 80 xx / E2 81 xx) become spaces, except U+2018/U+2019 (curly
    apostrophes), marked 1 for deletion like "'"; no-break space (C2 A0) becomes spaces."""
    if b.size >= 3:
        e2 = np.flatnonzero(b[:-2] == 0xE2)
        e2 = e2[(b[e2 + 1] == 0x80) | (b[e2 + 1] == 0x81)]
        quote = (b[e2 + 1] == 0x80) & ((b[e2 + 2] == 0x98) | (b[e2 + 2] == 0x99))
        fill = np.where(quote, np.uint8(1), np.uint8(32))
        for k in range(3):
            b[e2 + k] = fill
    if b.size >= 2:
        c2 = np.flatnonzero(b[:-1] == 0xC2)
        c2 = c2[b[c2 + 1] == 0xA0]
        b[c2] = 32
        b[c2 + 1] = 32


def normalize_for_shingles(text: str) -> str:
    """Lowercase, drop apostrophes, turn other punctuation into spaces, collapse whitespace.

    This is the text whose overlapping 5-byte (UTF-8) windows are the shingles."""
    norm = _normalize_chunk([text])
    raw = norm.buf[: int(norm.lengths[0])].tobytes()
    return raw.decode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------- shingling


def _ragged_arange(counts: I64) -> I64:
    """concat(arange(c) for c in counts), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offs = np.repeat(ends - counts, counts)
    return np.arange(total, dtype=np.int64) - offs


def _window_counts(norm: _Normalized) -> I64:
    """Number of 5-byte windows inside each text."""
    return np.maximum(norm.lengths - (SHINGLE_SIZE - 1), 0)


def _valid_windows(norm: _Normalized, counts: I64) -> npt.NDArray[np.bool_]:
    """Mask of the buffer offsets where a window inside one text starts (texts in order)."""
    size = norm.size
    valid = np.ones(size, dtype=bool)
    lo = norm.starts + counts
    hi = np.empty_like(lo)
    hi[:-1] = norm.starts[1:]
    hi[-1:] = size
    gap = hi - lo
    valid[np.repeat(lo, gap) + _ragged_arange(gap)] = False
    return valid


def _view(buf: U8, offset: int, size: int, dtype: str) -> npt.NDArray[np.generic]:
    """Unaligned little-endian view of ``dtype`` at every byte offset + ``offset``."""
    return np.ndarray(shape=(size,), dtype=dtype, buffer=buf, offset=offset, strides=(1,))


@dataclass
class _Codes:
    """Exact shingle codes of a chunk, texts contiguous and in order."""

    codes: U64  # injective: 5-grams packed in 40 bits, short texts tagged above
    counts: I64  # number of codes per text (with repeats)


def _shingle_codes(norm: _Normalized) -> _Codes:
    counts = _window_counts(norm)
    if norm.size >= SHINGLE_SIZE:
        windows = _view(norm.buf, 0, norm.size, "<u8")
        codes = windows[_valid_windows(norm, counts)].astype(np.uint64, copy=False)
        codes &= _MASK40
    else:
        codes = np.zeros(0, dtype=np.uint64)
    short = np.flatnonzero((norm.lengths > 0) & (counts == 0))
    if short.size:
        # Whole-text code for texts shorter than a shingle, tagged to never equal a 5-gram.
        sl = norm.lengths[short].astype(np.uint64)
        first = _view(norm.buf, 0, norm.size, "<u8")[norm.starts[short]].astype(np.uint64)
        mask = (np.uint64(1) << (sl * np.uint64(8))) - np.uint64(1)
        short_codes = (first & mask) | _SHORT_TAG | (sl << np.uint64(40))
        # Insert them at their text's position so that texts stay contiguous.
        codes = np.insert(codes, np.cumsum(counts)[short] - counts[short], short_codes)
        counts = counts.copy()
        counts[short] = 1
    return _Codes(codes, counts)


def _unique_per_text(codes: _Codes) -> list[U64]:
    out: list[U64] = []
    offset = 0
    for c in codes.counts.tolist():
        out.append(np.unique(codes.codes[offset : offset + c]))
        offset += c
    return out


def shingles(text: str) -> U64:
    """Sorted distinct shingle hashes of one text (uint64, same in every process)."""
    codes = _shingle_codes(_normalize_chunk([text])).codes
    return np.unique(_fmix64(codes))


def _intersection_size(a: U64, b: U64) -> int:
    """|a & b| for sorted distinct arrays."""
    if a.size == 0 or b.size == 0:
        return 0
    if a.size < b.size:
        a, b = b, a
    idx = np.searchsorted(a, b)
    idx[idx == a.size] = 0
    return int(np.count_nonzero(a[idx] == b))


def _jaccard_sets(a: U64, b: U64) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    inter = _intersection_size(a, b)
    return inter / (a.size + b.size - inter)


def jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of the shingle sets of two texts (0.0 if either has none)."""
    sets = _unique_per_text(_shingle_codes(_normalize_chunk([a, b])))
    return _jaccard_sets(sets[0], sets[1])


# ----------------------------------------------------------------------------- MinHash


@dataclass
class _Sketch:
    sig: U32  # (n, num_perm) densified one-permutation MinHash signature
    content: U64  # (n,) hash of the shingle multiset; 0 for texts without shingles
    counts: I64  # (n,) number of shingle windows


class MinHasher:
    """One-permutation MinHash with densification over the 5-byte shingles of normalised
    text, deterministic from ``seed`` (same signatures in every process and run).

    ``signatures`` returns values below 2**31 in uint32; in every column two texts agree
    with probability (close to) the Jaccard similarity of their shingle sets. A text without
    any shingle gets a row of 0xFFFFFFFF, which agrees with nothing real.
    """

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, seed: int = 1) -> None:
        if not 1 <= num_perm <= 4096:
            raise ValueError("num_perm must be between 1 and 4096")
        self.num_perm = num_perm
        self.seed = seed
        s0 = _splitmix64(seed & 0xFFFFFFFFFFFFFFFF)
        s1 = _splitmix64(s0)
        self._key = np.uint32(s0 & 0xFFFFFFFF)
        self._mul = tuple(np.uint32(((x >> 32) | 1) & 0xFFFFFFFF) for x in (s0, s1))
        self._mul += (np.uint32((s1 & 0xFFFFFFFF) | 1),)
        self._log2 = num_perm.bit_length() - 1 if num_perm & (num_perm - 1) == 0 else -1

    def _hash(self, w0: U32, w1: U32) -> U32:
        """Seeded 32-bit hash of 5-byte windows given as their bytes 0-3 and 1-4 (in place
        on w0 and w1; murmur3-style finaliser)."""
        m0, m1, m2 = self._mul
        w0 *= m0
        w1 *= m1
        w0 ^= w1
        w0 += self._key
        np.right_shift(w0, np.uint32(16), out=w1)
        w0 ^= w1
        w0 *= m2
        np.right_shift(w0, np.uint32(13), out=w1)
        w0 ^= w1
        return w0

    def _window_hashes(self, norm: _Normalized) -> tuple[U32, I64]:
        """32-bit hash of every shingle of every text, texts contiguous; and the counts."""
        counts = _window_counts(norm)
        if norm.size >= SHINGLE_SIZE:
            valid = _valid_windows(norm, counts)
            w0 = _view(norm.buf, 0, norm.size, "<u4")[valid].astype(np.uint32, copy=False)
            w1 = _view(norm.buf, 1, norm.size, "<u4")[valid].astype(np.uint32, copy=False)
            h = self._hash(w0, w1)
        else:
            h = np.zeros(0, dtype=np.uint32)
        short = np.flatnonzero((norm.lengths > 0) & (counts == 0))
        if short.size:
            # A text shorter than a shingle is one shingle: its bytes, zero padded (a real
            # 5-gram has no zero byte, so the two never meet).
            sl = norm.lengths[short].astype(np.uint64)
            first = _view(norm.buf, 0, norm.size, "<u8")[norm.starts[short]].astype(np.uint64)
            first &= (np.uint64(1) << (sl * np.uint64(8))) - np.uint64(1)
            s0 = (first & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            s1 = (first >> np.uint64(8)).astype(np.uint32)
            h = np.insert(h, np.cumsum(counts)[short] - counts[short], self._hash(s0, s1))
            counts = counts.copy()
            counts[short] = 1
        return h, counts

    def _sketch(self, texts: Sequence[str]) -> _Sketch:
        n, k = len(texts), self.num_perm
        h, counts = self._window_hashes(_normalize_chunk(texts))
        has = counts > 0
        # Content hash of each text's shingle multiset: sums of the hashes and of their
        # squares (64-bit), mixed with the count.
        content = np.zeros(n, dtype=np.uint64)
        if h.size:
            offsets = (np.cumsum(counts) - counts)[has]
            s1 = np.add.reduceat(h, offsets, dtype=np.uint64)
            g = h.astype(np.uint64)
            g *= g
            s2 = np.add.reduceat(g, offsets)
            del g
            mixed = _fmix64(s1 * np.uint64(0x9E3779B97F4A7C15) ^ _fmix64(s2))
            content[has] = _fmix64(mixed + counts[has].astype(np.uint64)) | np.uint64(1)
        # One-permutation MinHash: the bin is the hash's top bits, its value the hash >> 1.
        # Flat bin index row * k + bin in uint32 (a chunk has at most 2048 * 4096 bins).
        idx = np.repeat(np.arange(n, dtype=np.uint32) * np.uint32(k), counts)
        if self._log2 > 0:
            idx += h >> np.uint32(32 - self._log2)
        elif self._log2 < 0:  # bin = floor(top 16 bits * k / 2**16), in uint32
            top = h >> np.uint32(16)
            top *= np.uint32(k)
            top >>= np.uint32(16)
            idx += top
            del top
        h >>= np.uint32(1)
        sig = np.full(n * k, _SENTINEL, dtype=np.uint32)
        np.minimum.at(sig, idx, h)
        del idx, h
        sig2 = sig.reshape(n, k)
        _densify(sig2, has)
        return _Sketch(sig2, content, counts)

    def signatures(self, texts: Sequence[str]) -> U32:
        """(len(texts), num_perm) uint32 MinHash signatures."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for lo, sk in _map_chunks(texts, lambda lo, hi: self._sketch(texts[lo:hi])):
            out[lo : lo + sk.sig.shape[0]] = sk.sig
        return out


def _chunk_bounds(lengths: Iterator[int], n: int) -> list[tuple[int, int]]:
    """Consecutive chunks of range(n) of at most _CHUNK texts and _CHUNK_CHARS characters
    (a chunk holds at least one text)."""
    bounds: list[tuple[int, int]] = []
    lo = size = 0
    for i, length in enumerate(lengths):
        if i > lo and (i - lo >= _CHUNK or size + length > _CHUNK_CHARS):
            bounds.append((lo, i))
            lo, size = i, 0
        size += length
    if lo < n:
        bounds.append((lo, n))
    return bounds


def _map_chunks(
    texts: Sequence[str],
    work: Callable[[int, int], _T],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, _T]]:
    """``(lo, work(lo, hi))`` for consecutive chunks of the texts, in order, computed by up
    to two threads (numpy releases the GIL) with a bounded look-ahead, so that only a few
    chunks' intermediate arrays exist at once. ``progress(hi, n)`` after each chunk."""
    n = len(texts)
    bounds = _chunk_bounds(map(len, texts), n)
    workers = _workers()
    if len(bounds) <= 1 or workers == 1:
        for lo, hi in bounds:
            yield lo, work(lo, hi)
            if progress is not None:
                progress(hi, n)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[int, int, Future[_T]]] = deque()
        todo = iter(bounds)
        for lo, hi in todo:
            pending.append((lo, hi, pool.submit(work, lo, hi)))
            if len(pending) > workers:
                break
        while pending:
            lo, hi, fut = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt[0], nxt[1], pool.submit(work, nxt[0], nxt[1])))
            yield lo, fut.result()
            if progress is not None:
                progress(hi, n)


def _densify(sig: U32, has: npt.NDArray[np.bool_]) -> None:
    """Rotation densification, in place: an empty bin takes the value of the next non-empty
    bin to its right (circularly), offset by the distance, so two texts fill the same empty
    bin identically when their sources agree (Shrivastava & Li, ICML 2014). Rows without
    any shingle (``has`` false) stay empty."""
    k = sig.shape[1]
    flat = sig.reshape(-1)
    empty = np.flatnonzero(flat == _SENTINEL)
    if empty.size == 0:
        return
    empty = empty[has[empty // k]]
    rows = empty - empty % k
    cols = empty % k
    out = np.empty(empty.size, dtype=np.uint32)
    todo = np.arange(empty.size)
    step = ((np.arange(k, dtype=np.uint64) * np.uint64(_ROT)) & np.uint64(0x7FFFFFFF)).astype(
        np.uint32
    )
    for d in range(1, k):
        src = flat[rows[todo] + (cols[todo] + d) % k]
        found = src != _SENTINEL
        out[todo[found]] = (src[found] + step[d]) & np.uint32(0x7FFFFFFF)
        todo = todo[~found]
        if todo.size == 0:
            break
    flat[empty] = out


# --------------------------------------------------------------------------------- LSH


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band). The most rows per band (the steepest S-curve, so the fewest
    candidates among the many moderately similar rows of templated data: those dominate the
    cost) such that a pair is still a candidate with probability >= 0.96 at
    J = threshold + 0.1 and >= 0.6 at J = threshold.

    For 0.7 and 144 bins: 18 bands of 8 rows. P(candidate) = 0.66 at J = 0.7, 0.85 at 0.75,
    0.963 at 0.8, 0.997 at 0.85, 0.9999 at 0.9; and 0.07 at J = 0.5, 0.012 at 0.4.
    (datasketch's MinHashLSH(0.7, num_perm=128) uses 14 bands of 9 rows: 0.44 at 0.7, 0.67
    at 0.75, 0.87 at 0.8, 0.975 at 0.85.)"""
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        at_t = 1.0 - (1.0 - threshold**r) ** b
        above = 1.0 - (1.0 - min(1.0, threshold + 0.1) ** r) ** b
        if at_t >= 0.6 and above >= 0.96:
            best = (b, r)
    return best


def _band_keys(sig: U32, bands: int, rows: int) -> U32:
    """(n, bands) 32-bit hash of each band; band t uses the strided bins t, t+bands, ...
    (Two different bands collide by chance for ~n**2 / 2**33 row pairs per band, about a
    hundred at a million rows: harmless, the signature estimate drops them.)"""
    n = sig.shape[0]
    s = sig[:, : bands * rows].reshape(n, rows, bands).astype(np.uint64)
    h = np.full((n, bands), 0x243F6A8885A308D3, dtype=np.uint64)
    for i in range(rows):
        h ^= s[:, i, :]
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    h ^= h >> np.uint64(32)
    return h.astype(np.uint32)


def _sort_keys(keys: U32) -> tuple[U64, I64]:
    """Sorted keys and the positions that sort them (stable), via one plain numpy sort of
    (key << 32 | position) words instead of a slower argsort."""
    packed = keys.astype(np.uint64) << np.uint64(32)
    packed |= np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    packed >>= np.uint64(32)
    return packed, order


def _packed_sort(keys: U64) -> tuple[U64, I64]:
    """Sort 64-bit ``keys`` by their high bits, with the position packed into the low bits
    (one plain numpy sort instead of a slower argsort). Returns the sorted key prefixes and
    the positions; equal prefixes come in ascending position order."""
    ib = max(1, int(keys.size - 1).bit_length())
    packed = (keys >> np.uint64(ib)) << np.uint64(ib)
    packed |= np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << ib) - 1)).astype(np.int64)
    packed >>= np.uint64(ib)
    return packed, order


def _runs(sorted_keys: U64) -> tuple[I64, I64]:
    """Start and length of each run of >= 2 equal values in a sorted array."""
    if sorted_keys.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.empty(sorted_keys.size, dtype=bool)
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    start = np.flatnonzero(new)
    length = np.diff(np.append(start, sorted_keys.size))
    multi = length >= 2
    return start[multi], length[multi]


def _packed_words(num_perm: int) -> int:
    return (num_perm + 15) // 16


def _pack4(sig: U32) -> U64:
    """Low 4 bits of each signature value, 16 to a uint64 word (b-bit MinHash, b = 4)."""
    n, k = sig.shape
    words = _packed_words(k)
    nib = np.zeros((n, words * 16), dtype=np.uint8)
    nib[:, :k] = sig & np.uint32(0xF)
    packed = nib[:, 0::2] | (nib[:, 1::2] << np.uint8(4))
    return packed.view(np.uint64)


_LOW3 = np.uint64(0x7777777777777777)
_HIGH1 = np.uint64(0x8888888888888888)


def _agreement(
    sa: U64, sb: U64, a: I64, b: I64, num_perm: int, chunk: int = 32768
) -> npt.NDArray[np.float64]:
    """Signature estimate of the Jaccard similarity of row pairs from 4-bit packed values:
    the share of equal nibbles, corrected for chance agreement (1/16 per bin). Its standard
    deviation is within 5% of the one from full values."""
    out = np.empty(a.size, dtype=np.float64)
    words = sa.shape[1]
    for s in range(0, a.size, chunk):
        e = min(s + chunk, a.size)
        x = sa[a[s:e]]
        x ^= sb[b[s:e]]
        # Bit 3 of each nibble := nibble != 0 (SWAR), then 4 words' flags into one word.
        y = x & _LOW3
        y += _LOW3
        y |= x
        y &= _HIGH1
        mismatch = np.zeros(e - s, dtype=np.int64)
        for w0 in range(0, words, 4):
            z = y[:, w0] >> np.uint64(3)
            for w in range(w0 + 1, min(w0 + 4, words)):
                z |= y[:, w] >> np.uint64(3 - (w - w0))
            mismatch += np.bitwise_count(z)
        out[s:e] = mismatch
    # Mismatching nibbles were counted (padding nibbles are 0 in both, never counted).
    out = (num_perm - out) / num_perm
    out -= 1.0 / 16
    out /= 1.0 - 1.0 / 16
    return out


def _encode(a: I64, b: I64) -> U64:
    return (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)


def _decode(enc: U64) -> tuple[I64, I64]:
    return (enc >> np.uint64(32)).astype(np.int64), (enc & np.uint64(0xFFFFFFFF)).astype(np.int64)


# -------------------------------------------------------------------- exact verification


def _sorted_sets(texts: Sequence[str], ids: I64) -> tuple[U64, I64]:
    """Distinct shingle codes of ``texts[i]`` for each i in ids, sorted, as one flat array
    and offsets (CSR: text k is flat[off[k]:off[k + 1]])."""

    def one(bound: tuple[int, int]) -> tuple[U64, I64]:
        part = ids[bound[0] : bound[1]].tolist()
        sc = _shingle_codes(_normalize_chunk([texts[i] for i in part]))
        # Sort (text, code) keys: codes end up sorted within each text.
        key = np.repeat(np.arange(len(part), dtype=np.uint64), sc.counts)
        key <<= np.uint64(_CODE_BITS)
        key |= sc.codes
        key.sort()
        if key.size:
            keep = np.empty(key.size, dtype=bool)
            keep[0] = True
            np.not_equal(key[1:], key[:-1], out=keep[1:])
            key = key[keep]
        bounds = np.arange(len(part) + 1, dtype=np.uint64) << np.uint64(_CODE_BITS)
        sizes = np.diff(np.searchsorted(key, bounds))
        key &= np.uint64((1 << _CODE_BITS) - 1)
        return key, sizes

    chunks = _chunk_bounds((len(texts[i]) for i in ids.tolist()), ids.size)
    if len(chunks) > 1 and _workers() > 1:
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            parts = list(pool.map(one, chunks))
    else:
        parts = [one(c) for c in chunks]
    flat = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
    off = np.zeros(ids.size + 1, dtype=np.int64)
    if parts:
        np.cumsum(np.concatenate([p[1] for p in parts]), out=off[1:])
    return flat, off


def _intersections(flat: U64, off: I64, pa: I64, pb: I64) -> I64:
    """|set pa[p] & set pb[p]| for each pair p, for sorted distinct CSR sets: each element
    of the smaller set is binary-searched in the larger one."""
    out = np.zeros(pa.size, dtype=np.int64)
    starts = off[:-1].tolist()
    ends = off[1:].tolist()
    for p, (x, y) in enumerate(zip(pa.tolist(), pb.tolist(), strict=True)):
        sx, ex, sy, ey = starts[x], ends[x], starts[y], ends[y]
        if ex - sx < ey - sy:
            sx, ex, sy, ey = sy, ey, sx, ex
        big, small = flat[sx:ex], flat[sy:ey]
        if small.size:
            hit = big.take(big.searchsorted(small), mode="clip") == small
            out[p] = np.count_nonzero(hit)
    return out


_VERIFY_TEXTS = 32768  # texts whose shingle sets are loaded together (~100 MB)


def _pair_blocks(a: I64, b: I64, same: bool) -> list[tuple[int, int]]:
    """Cut the pair list into consecutive blocks touching at most _VERIFY_TEXTS texts."""
    blocks: list[tuple[int, int]] = []
    seen: set[int] = set()
    seen_b: set[int] = set()
    start = 0
    for p, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        if same:
            seen.add(x)
            seen.add(y)
            size = len(seen)
        else:
            seen.add(x)
            seen_b.add(y)
            size = max(len(seen), len(seen_b))
        if size > _VERIFY_TEXTS:
            blocks.append((start, p))
            start = p
            seen = {x, y} if same else {x}
            seen_b = set() if same else {y}
    if start < a.size:
        blocks.append((start, a.size))
    return blocks


def _verify(
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    a: I64,
    b: I64,
    threshold: float,
) -> tuple[I64, I64, npt.NDArray[np.float64]]:
    """Keep the pairs (texts_a[a[p]], texts_b[b[p]]) whose exact Jaccard >= threshold and
    return them with that Jaccard. Blocks of pairs are verified together so that each
    block's texts are shingled once, in a vectorised batch."""
    same = texts_a is texts_b

    def load(block: tuple[int, int]) -> tuple[U64, I64, I64, I64]:
        ba, bb = a[block[0] : block[1]], b[block[0] : block[1]]
        if same:
            ids = np.unique(np.concatenate([ba, bb]))
            flat, off = _sorted_sets(texts_a, ids)
            return flat, off, np.searchsorted(ids, ba), np.searchsorted(ids, bb)
        ida, idb = np.unique(ba), np.unique(bb)
        fa, oa = _sorted_sets(texts_a, ida)
        fb, ob = _sorted_sets(texts_b, idb)
        flat = np.concatenate([fa, fb])
        off = np.concatenate([oa, ob[1:] + oa[-1]])
        return flat, off, np.searchsorted(ida, ba), np.searchsorted(idb, bb) + ida.size

    keep_a: list[I64] = []
    keep_b: list[I64] = []
    keep_s: list[npt.NDArray[np.float64]] = []
    blocks = _pair_blocks(a, b, same)
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        nxt = prefetch.submit(load, blocks[0]) if blocks else None
        for i, block in enumerate(blocks):
            assert nxt is not None
            flat, off, pa, pb = nxt.result()
            nxt = prefetch.submit(load, blocks[i + 1]) if i + 1 < len(blocks) else None
            inter = _intersections(flat, off, pa, pb)
            na, nb = off[pa + 1] - off[pa], off[pb + 1] - off[pb]
            union = na + nb - inter
            sim = inter / np.maximum(union, 1)
            ok = (na > 0) & (nb > 0) & (sim >= threshold)
            # Too few shingles for a meaningful similarity: only identical sets pair.
            ok &= (np.minimum(na, nb) >= MIN_SHINGLES) | (inter == union)
            keep_a.append(a[block[0] : block[1]][ok])
            keep_b.append(b[block[0] : block[1]][ok])
            keep_s.append(sim[ok])
    if not keep_a:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, np.float64)
    return np.concatenate(keep_a), np.concatenate(keep_b), np.concatenate(keep_s)


def jaccard_pairs(
    texts: Sequence[str], pairs: Iterable[tuple[int, int]]
) -> npt.NDArray[np.float64]:
    """Exact shingle Jaccard of many pairs of ``texts`` (by index), vectorised: the same
    value as ``jaccard(texts[i], texts[j])`` for each pair (0.0 when either has no shingle),
    at ~10 us a pair instead of ~100 us."""
    pair_list = [(int(p[0]), int(p[1])) for p in pairs]
    a = np.array([p[0] for p in pair_list], dtype=np.int64)
    b = np.array([p[1] for p in pair_list], dtype=np.int64)
    out = np.zeros(a.size, dtype=np.float64)
    for lo, hi in _pair_blocks(a, b, True):
        ids = np.unique(np.concatenate([a[lo:hi], b[lo:hi]]))
        flat, off = _sorted_sets(texts, ids)
        pa, pb = np.searchsorted(ids, a[lo:hi]), np.searchsorted(ids, b[lo:hi])
        inter = _intersections(flat, off, pa, pb)
        union = (off[pa + 1] - off[pa]) + (off[pb + 1] - off[pb]) - inter
        nonempty = (off[pa + 1] > off[pa]) & (off[pb + 1] > off[pb])
        out[lo:hi] = np.where(nonempty, inter / np.maximum(union, 1), 0.0)
    return out


# ------------------------------------------------------------------------ the index


@dataclass
class _Index:
    """Sketch of a corpus. Texts with identical shingle multisets (exact duplicates after
    normalisation) are grouped; only each group's first member (its representative) takes
    part in LSH. Everything is indexed by original text position."""

    keys: U32  # (n, bands) band hashes
    sig4: U64  # (n, num_perm / 16) low 4 bits of each signature value, packed
    reps: I64  # representatives, ascending
    group_of: I64  # (n,) group number of each text, -1 for texts without shingles
    members: I64  # all grouped texts, by group, ascending within a group
    offsets: I64  # group g is members[offsets[g] : offsets[g + 1]]
    bins: int  # signature width (num_perm)

    def group(self, g: int) -> I64:
        return self.members[self.offsets[g] : self.offsets[g + 1]]


def _build_index(
    texts: Sequence[str],
    bands: int,
    rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> _Index:
    n = len(texts)
    hasher = MinHasher(DEFAULT_NUM_PERM, seed=1)
    content = np.zeros(n, dtype=np.uint64)
    keys = np.empty((n, bands), dtype=np.uint32)
    sig4 = np.empty((n, _packed_words(hasher.num_perm)), dtype=np.uint64)

    def work(lo: int, hi: int) -> tuple[U64, U32, U64]:
        sk = hasher._sketch(texts[lo:hi])
        return sk.content, _band_keys(sk.sig, bands, rows), _pack4(sk.sig)

    for lo, (c, k, s4) in _map_chunks(texts, work, progress):
        content[lo : lo + c.size] = c
        keys[lo : lo + c.size] = k
        sig4[lo : lo + c.size] = s4
    valid = np.flatnonzero(content)
    group_of = np.full(n, -1, dtype=np.int64)
    if valid.size == 0:
        z = np.zeros(0, np.int64)
        return _Index(keys, sig4, z, group_of, z, np.zeros(1, np.int64), hasher.num_perm)
    prefix, order = _packed_sort(content[valid])
    full = content[valid][order]
    new = np.empty(full.size, dtype=bool)
    new[0] = True
    np.not_equal(full[1:], full[:-1], out=new[1:])
    if np.any(~new[1:] != (prefix[1:] == prefix[:-1])):
        # Two different contents share a sort prefix (about 1 run in 30 at a million texts):
        # fall back to a full sort so that equal contents are adjacent.
        order = np.argsort(content[valid], kind="stable")
        full = content[valid][order]
        np.not_equal(full[1:], full[:-1], out=new[1:])
    gid = np.cumsum(new) - 1  # group of each sorted position, numbered by content order
    first = np.flatnonzero(new)
    # Renumber groups by their first member (ascending) so that results are in input order.
    rep_local = order[first]
    renum = np.empty(first.size, dtype=np.int64)
    renum[np.argsort(rep_local, kind="stable")] = np.arange(first.size)
    g_sorted = renum[gid]
    group_of[valid[order]] = g_sorted
    sizes = np.bincount(g_sorted, minlength=first.size)
    offsets = np.zeros(first.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    members = valid[np.argsort(group_of[valid], kind="stable")]
    reps = np.sort(valid[rep_local])
    return _Index(keys, sig4, reps, group_of, members, offsets, hasher.num_perm)


_MAX_BUCKET_PAIRS = 64  # per LSH bucket: each member is paired with at most this many others
# The signature pre-filter keeps a candidate when its estimate >= threshold - 0.08; only
# those are verified exactly. The estimate's standard deviation is about 0.035 near J = 0.7
# with 144 bins (measured on LSH candidates, which also bias it up by ~0.01), so the filter
# drops about 1% of the pairs at exactly the threshold and ~0.1% at threshold + 0.03: small
# next to the LSH's own misses (34% at the threshold), and it halves the exact work on
# templated data, where many candidates sit just below the threshold.
_ESTIMATE_SLACK = 0.08


def _band_survivors(index: _Index, t: int, floor: float) -> U64:
    """Encoded pairs (a << 32 | b, a < b, original positions) of representatives that share
    band ``t`` and whose signature estimate is >= floor.

    The packed signatures of the rows in multi-member buckets are first gathered in bucket
    order, so that comparing the members of a bucket reads memory sequentially instead of
    jumping around the whole index (templated data gives tens of millions of candidates)."""
    reps = index.reps
    sk, order = _sort_keys(index.keys[reps, t])
    start, length = _runs(sk)
    if start.size == 0:
        return np.zeros(0, dtype=np.uint64)
    pos_in_run = _ragged_arange(length)
    rows = reps[order[np.repeat(start, length) + pos_in_run]]  # bucket members, in order
    local = index.sig4[rows]
    cnt = np.minimum(np.repeat(length, length) - 1 - pos_in_run, _MAX_BUCKET_PAIRS)
    left = np.repeat(np.arange(rows.size, dtype=np.int64), cnt)
    right = left + 1 + _ragged_arange(cnt)
    keep = _agreement(local, local, left, right, index.bins) >= floor
    a, b = rows[left[keep]], rows[right[keep]]
    return _encode(np.minimum(a, b), np.maximum(a, b))


def _self_candidates(index: _Index, threshold: float) -> tuple[I64, I64]:
    """Candidate pairs (original positions, a < b) among representatives: they share a band
    and their signature estimate is within the slack of the threshold."""
    floor = threshold - _ESTIMATE_SLACK
    bands = index.keys.shape[1]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        parts = list(pool.map(lambda t: _band_survivors(index, t, floor), range(bands)))
    return _decode(np.unique(np.concatenate(parts)))


def _cross_candidates(qi: _Index, ci: _Index, threshold: float) -> tuple[I64, I64]:
    floor = threshold - _ESTIMATE_SLACK

    def band(t: int) -> U64:
        sk, order = _sort_keys(ci.keys[ci.reps, t])
        qk = qi.keys[qi.reps, t].astype(np.uint64)
        lo = np.searchsorted(sk, qk, side="left")
        cnt = np.minimum(np.searchsorted(sk, qk, side="right") - lo, _MAX_BUCKET_PAIRS)
        a = np.repeat(qi.reps, cnt)
        b = ci.reps[order[np.repeat(lo, cnt) + _ragged_arange(cnt)]]
        if a.size:
            keep = _agreement(qi.sig4, ci.sig4, a, b, qi.bins) >= floor
            a, b = a[keep], b[keep]
        return _encode(a, b)

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        parts = list(pool.map(band, range(qi.keys.shape[1])))
    return _decode(np.unique(np.concatenate(parts)))


# How many pairs to spell out per pair of identical-content groups before falling back to a
# spanning set (a chain inside a group, one link between two groups).
_EXPAND_LIMIT = 2500


def _within_group_pairs(members: I64) -> list[tuple[int, int, float]]:
    m = members.tolist()
    if len(m) * (len(m) - 1) // 2 <= _EXPAND_LIMIT:
        return [(m[x], m[y], 1.0) for x in range(len(m)) for y in range(x + 1, len(m))]
    return [(m[x], m[x + 1], 1.0) for x in range(len(m) - 1)]


def _between_groups_pairs(ma: I64, mb: I64, sim: float) -> list[tuple[int, int, float]]:
    if ma.size * mb.size <= _EXPAND_LIMIT:
        return [(min(x, y), max(x, y), sim) for x in ma.tolist() for y in mb.tolist()]
    x, y = int(ma[0]), int(mb[0])
    return [(min(x, y), max(x, y), sim)]


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")


def near_duplicate_pairs(
    texts: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, int, float]]:
    """All pairs ``(i, j, jaccard)`` with ``i < j`` and exact shingle Jaccard >= threshold.

    Candidates come from MinHash LSH; every reported pair is verified with the EXACT Jaccard
    of the two shingle sets, which is the similarity reported. Texts without shingles never
    pair; texts with fewer than ``MIN_SHINGLES`` distinct shingles pair only with texts of
    identical shingle set. LSH can miss a pair close to the threshold (see ``_lsh_params``:
    1 in 3 at exactly 0.7, 1 in 27 at 0.8, 1 in 300 at 0.85); it adds no false pair.

    Texts with an identical shingle multiset (exact duplicates after normalisation) form a
    group. When listing all pairs of a group, or between two groups, would exceed 2500
    pairs, a spanning set is returned instead (a chain inside the group, one link between
    two groups): group the result with ``group_pairs`` rather than relying on every pair
    being listed. LSH buckets holding many distinct texts are bounded too (each member is
    compared with at most 64 others of a bucket, in every band).

    The result is sorted. ``progress(done, total)`` is called after each chunk of texts is
    sketched and once more at the end. At most 2**32 texts.
    """
    _check_threshold(threshold)
    n = len(texts)
    bands, rows = _lsh_params(threshold, DEFAULT_NUM_PERM)
    index = _build_index(texts, bands, rows, progress)
    a, b = _self_candidates(index, threshold)
    va, vb, sims = _verify(texts, texts, a, b, threshold)
    out: list[tuple[int, int, float]] = []
    for g in np.flatnonzero(np.diff(index.offsets) >= 2).tolist():
        out.extend(_within_group_pairs(index.group(g)))
    for x, y, sim in zip(va.tolist(), vb.tolist(), sims.tolist(), strict=True):
        gx, gy = int(index.group_of[x]), int(index.group_of[y])
        out.extend(_between_groups_pairs(index.group(gx), index.group(gy), sim))
    out.sort()
    if progress is not None:
        progress(n, n)
    return out


def cross_pairs(
    queries: Sequence[str],
    corpus: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[tuple[int, int, float]]:
    """``(query_index, corpus_index, jaccard)`` for every query/corpus pair whose exact
    shingle Jaccard >= threshold (e.g. leakage of test rows into a training set). Verified
    exactly like ``near_duplicate_pairs``; every pair is listed (no spanning sets). Sorted."""
    _check_threshold(threshold)
    if len(queries) == 0 or len(corpus) == 0:
        return []
    bands, rows = _lsh_params(threshold, DEFAULT_NUM_PERM)
    qi = _build_index(queries, bands, rows)
    ci = _build_index(corpus, bands, rows)
    if qi.reps.size == 0 or ci.reps.size == 0:
        return []
    a, b = _cross_candidates(qi, ci, threshold)
    va, vb, sims = _verify(queries, corpus, a, b, threshold)
    out: list[tuple[int, int, float]] = []
    for x, y, sim in zip(va.tolist(), vb.tolist(), sims.tolist(), strict=True):
        for q in qi.group(int(qi.group_of[x])).tolist():
            out.extend((q, c, sim) for c in ci.group(int(ci.group_of[y])).tolist())
    out.sort()
    return out


# ---------------------------------------------------------------------------- grouping


def group_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of the graph on ``range(n)`` with edges ``pairs``
    (union-find). Each group is sorted; groups are sorted by their first member. Tuples may
    carry more fields (e.g. a similarity): only the first two are read."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while (up := parent[root]) != root:
            root = up
        while x != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for pair in pairs:
        i, j = int(pair[0]), int(pair[1])
        if not (0 <= i < n and 0 <= j < n):
            raise IndexError(f"pair {(i, j)} out of range for n={n}")
        parent.setdefault(i, i)
        parent.setdefault(j, j)
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for x in sorted(parent):
        groups.setdefault(find(x), []).append(x)
    return sorted((g for g in groups.values() if len(g) >= 2), key=lambda g: g[0])

"""Near-duplicate detection: character-5-gram shingles, one-permutation MinHash and LSH.

Everything here is vectorised numpy and deterministic across processes and machines (no use
of Python's salted ``hash()``); there is no import-time work.

Pipeline for ``near_duplicate_pairs`` (texts are processed in chunks, so memory is bounded by
the chunk size plus a few hundred bytes of sketch per text):

1. Normalise a whole chunk at once as UTF-8 bytes: lowercase, apostrophes dropped, every
   other ASCII punctuation/whitespace character (and the common Unicode punctuation and
   no-break space) becomes a space, runs of spaces collapse, ends are stripped.
2. Shingles are the overlapping 5-byte windows of the normalised bytes, each packed exactly
   into a 40-bit integer (so the shingle sets, and hence ``jaccard``, are exact: no hash
   collisions). A non-empty text shorter than 5 bytes has one shingle, the whole text.
3. One-permutation MinHash (Li, Owen & Zhang 2012) with rotation densification (Shrivastava
   & Li 2014): each shingle is hashed once; the hash picks one of ``num_perm`` bins and the
   bin keeps its minimum. The cost is O(shingles), not O(shingles x num_perm), and for every
   bin P[signatures agree] = Jaccard, as with classic MinHash.
4. Texts with identical normalised shingle multisets are collapsed to one representative
   (exact duplicates never cost LSH or verification work, however many there are).
5. LSH banding over strided bins; collisions are found with numpy sorts, never dicts.
6. Candidates are pre-filtered by signature agreement (a loose bound, far below the
   threshold, only to discard obvious LSH false positives), then VERIFIED WITH THE EXACT
   JACCARD of the shingle sets. Every reported similarity is exact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
    "near_duplicate_pairs",
    "normalize_for_shingles",
    "shingles",
]

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

# Jaccard threshold for "near duplicate" on character 5-gram sets of normalised text.
# Measured on support-ticket style chats of 150-600 characters (see tests/test_minhash.py and
# bench/near_dup_peer.py): a typo fix or a case/punctuation change keeps J >= 0.9, one or two
# changed/added/removed words keep J around 0.78-0.95 (short texts lose the most: every edited
# word removes ~len(word)+4 shingles), a sentence appended to a long text keeps J >= 0.8.
# Distinct conversations that share a template, a greeting or a boilerplate closing stay
# below ~0.55 (shared boilerplate is a minority of the shingles of each). 0.7 sits in the gap:
# it keeps the recall of two-word edits on short texts that 0.8 would lose, and it stays
# well clear of the templated-but-different rows.
DEFAULT_THRESHOLD: float = 0.7

#: Number of MinHash bins (the signature width).
DEFAULT_NUM_PERM: int = 128

#: Characters (UTF-8 bytes) per shingle.
SHINGLE_SIZE: int = 5

#: A text with fewer distinct shingles than this (normalised length < 7 bytes) pairs only with
#: texts that have exactly the same shingle set, so "ok", "yes" or "" never pair with
#: everything. A text with no shingle at all (empty after normalisation) never pairs.
MIN_SHINGLES: int = 3

_CHUNK = 16384  # texts per chunk of the vectorised sketching stage
_MAX_BUCKET_PAIRS = 64  # per LSH bucket: each member is paired with at most this many others
_ESTIMATE_SLACK = 0.25  # loose pre-filter: signature agreement >= threshold - slack
_SENTINEL = np.uint32(0xFFFFFFFF)  # empty OPH bin (real values are 31-bit)
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_ROT = np.uint32(0x9E3779B1)  # densification offset per bin of distance
_SHORT_TAG = np.uint64(1 << 48)  # tags the code of a text shorter than SHINGLE_SIZE
_MASK40 = np.uint64((1 << 40) - 1)


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


def _build_lut() -> U8:
    lut = np.full(256, 32, dtype=np.uint8)  # ASCII punctuation, whitespace, controls -> space
    lut[128:] = np.arange(128, 256, dtype=np.uint8)  # UTF-8 multi-byte sequences kept
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        lut[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        lut[c] = c + 32
    lut[0] = 0  # chunk separator
    lut[ord("'")] = 1  # deleted: "don't" and "dont" normalise alike
    lut[ord("`")] = 1
    return lut


_LUT: U8 | None = None


def _lut() -> U8:
    global _LUT
    if _LUT is None:
        _LUT = _build_lut()
    return _LUT


@dataclass
class _Normalized:
    buf: U8  # normalised bytes of all texts, separated by single 0 bytes
    starts: I64  # start offset of each text in buf
    lengths: I64  # normalised byte length of each text


def _normalize_chunk(texts: Sequence[str]) -> _Normalized:
    n = len(texts)
    if n == 0:
        return _Normalized(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    joined = "\x00".join(texts)
    if joined.count("\x00") != n - 1:
        joined = "\x00".join(t.replace("\x00", " ") for t in texts)
    raw = joined.lower().encode("utf-8", "surrogatepass")
    if not raw:
        return _Normalized(np.zeros(0, np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int64))
    b = _lut()[np.frombuffer(raw, dtype=np.uint8)]
    # Unicode punctuation: U+2000..U+206F is E2 80 xx / E2 81 xx; U+2018/U+2019 (curly
    # apostrophes) are deleted like "'", the rest become spaces. No-break space C2 A0 -> space.
    e2 = np.flatnonzero(b[:-2] == 0xE2) if b.size >= 3 else np.zeros(0, np.int64)
    if e2.size:
        e2 = e2[(b[e2 + 1] == 0x80) | (b[e2 + 1] == 0x81)]
        quote = (b[e2 + 1] == 0x80) & ((b[e2 + 2] == 0x98) | (b[e2 + 2] == 0x99))
        fill = np.where(quote, np.uint8(1), np.uint8(32))
        for k in range(3):
            b[e2 + k] = fill
    c2 = np.flatnonzero(b[:-1] == 0xC2) if b.size >= 2 else np.zeros(0, np.int64)
    if c2.size:
        c2 = c2[b[c2 + 1] == 0xA0]
        b[c2] = 32
        b[c2 + 1] = 32
    b = b[b != 1]
    if b.size == 0:
        return _Normalized(b, np.zeros(n, np.int64), np.zeros(n, np.int64))
    # Collapse runs of spaces to their first space, and drop it when it starts a text.
    sp = b == 32
    prev = np.empty_like(b)
    prev[0] = 0
    prev[1:] = b[:-1]
    b = b[~sp | ((prev != 32) & (prev != 0))]
    # Drop a space that ends a text (the run was already collapsed to one space).
    nxt = np.empty_like(b)
    nxt[-1:] = 0
    nxt[:-1] = b[1:]
    b = b[~((b == 32) & (nxt == 0))]
    seps = np.flatnonzero(b == 0)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = seps + 1
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = seps
    ends[-1] = b.size
    return _Normalized(b, starts, ends - starts)


def normalize_for_shingles(text: str) -> str:
    """Lowercase, drop apostrophes, turn other punctuation into spaces, collapse whitespace."""
    norm = _normalize_chunk([text])
    return norm.buf.tobytes().decode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------- shingling


@dataclass
class _Codes:
    """Shingle codes of a chunk, grouped by text (order within a text is arbitrary)."""

    codes: U64  # exact (injective) shingle codes, texts contiguous, in text order
    counts: I64  # number of shingle windows per text (with repeats)


def _ragged_arange(counts: I64) -> I64:
    """concat(arange(c) for c in counts), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offs = np.repeat(ends - counts, counts)
    return np.arange(total, dtype=np.int64) - offs


def _shingle_codes(norm: _Normalized) -> _Codes:
    buf, starts, lengths = norm.buf, norm.starts, norm.lengths
    n_bytes = buf.size
    padded = np.zeros(n_bytes + 8, dtype=np.uint8)
    padded[:n_bytes] = buf
    # Unaligned little-endian uint64 view at every byte offset; the low 40 bits are the
    # 5-byte window starting there.
    windows = np.ndarray(shape=(n_bytes + 1,), dtype="<u8", buffer=padded, strides=(1,))
    counts = np.maximum(lengths - (SHINGLE_SIZE - 1), 0)
    long_texts = counts > 0
    if n_bytes >= SHINGLE_SIZE:
        # A window is valid when it holds no separator (0) byte: windows end-to-end.
        is_sep = (buf == 0).view(np.int8)
        cs = np.concatenate(([0], np.cumsum(is_sep, dtype=np.int32)))
        valid = cs[SHINGLE_SIZE : n_bytes + 1] == cs[: n_bytes + 1 - SHINGLE_SIZE]
        pos = np.flatnonzero(valid)
        codes = windows[pos] & _MASK40
    else:
        codes = np.zeros(0, dtype=np.uint64)
    short = np.flatnonzero((lengths > 0) & ~long_texts)
    if short.size:
        # Whole-text code for texts shorter than a shingle, tagged to never equal a 5-gram.
        sl = lengths[short].astype(np.uint64)
        mask = (np.uint64(1) << (sl * np.uint64(8))) - np.uint64(1)
        short_codes = (windows[starts[short]] & mask) | _SHORT_TAG | (sl << np.uint64(40))
        # Insert them at their text's position so that texts stay contiguous.
        insert_at = np.cumsum(counts)[short] - counts[short]
        codes = np.insert(codes, insert_at, short_codes)
        counts = counts.copy()
        counts[short] = 1
    return _Codes(codes.astype(np.uint64, copy=False), counts.astype(np.int64, copy=False))


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
    """One-permutation MinHash with densification, deterministic from ``seed``.

    ``signatures`` returns 31-bit values in uint32; for every column, two texts agree with
    probability equal to the Jaccard similarity of their shingle sets. Texts without any
    shingle get an all-0xFFFFFFFF row.
    """

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, seed: int = 1) -> None:
        if not 1 <= num_perm <= 4096:
            raise ValueError("num_perm must be between 1 and 4096")
        self.num_perm = num_perm
        self.seed = seed
        s0 = _splitmix64(seed & 0xFFFFFFFFFFFFFFFF)
        s1 = _splitmix64(s0)
        s2 = _splitmix64(s1)
        self._key = np.uint64(s0)
        self._mul1 = np.uint64(s1 | 1)
        self._mul2 = np.uint64(s2 | 1)
        self._log2 = num_perm.bit_length() - 1 if num_perm & (num_perm - 1) == 0 else -1

    def _hash(self, codes: U64) -> U64:
        """Seeded bijective mix of shingle codes (xor, multiply, xorshift, multiply, ...)."""
        h = codes ^ self._key
        tmp = np.empty_like(h)
        np.multiply(h, self._mul1, out=h)
        np.right_shift(h, np.uint64(32), out=tmp)
        np.bitwise_xor(h, tmp, out=h)
        np.multiply(h, self._mul2, out=h)
        np.right_shift(h, np.uint64(29), out=tmp)
        np.bitwise_xor(h, tmp, out=h)
        return h

    def _sketch(self, texts: Sequence[str]) -> _Sketch:
        n, k = len(texts), self.num_perm
        sc = _shingle_codes(_normalize_chunk(texts))
        h = self._hash(sc.codes)
        if self._log2 >= 0:
            bins = (h >> np.uint64(64 - self._log2)).view(np.int64) if self._log2 else None
        else:
            bins = (((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)).view(np.int64)
        vals = ((h >> np.uint64(1)) & np.uint64(0x7FFFFFFF)).astype(np.uint32)
        row = np.repeat(np.arange(n, dtype=np.int64) * k, sc.counts)
        idx = row if bins is None else row + bins
        sig = np.full(n * k, _SENTINEL, dtype=np.uint32)
        np.minimum.at(sig, idx, vals)
        sig2 = sig.reshape(n, k)
        _densify(sig2)
        content = np.zeros(n, dtype=np.uint64)
        has = sc.counts > 0
        if h.size:
            offsets = np.cumsum(sc.counts) - sc.counts
            sums = np.add.reduceat(_fmix64(h), offsets[has])
            content[has] = sums ^ _fmix64(sc.counts[has].astype(np.uint64))
            content[has] |= np.uint64(1)  # never 0
        return _Sketch(sig2, content, sc.counts)

    def _sketch_chunks(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, _Sketch]]:
        n = len(texts)
        bounds = [(s, min(s + _CHUNK, n)) for s in range(0, n, _CHUNK)]
        if len(bounds) <= 1 or _workers() == 1:
            for s, e in bounds:
                yield s, self._sketch(texts[s:e])
                if progress is not None:
                    progress(e, n)
            return
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            # Bounded look-ahead so that at most a few chunks are in memory at once.
            pending = []
            it = iter(bounds)
            for s, e in it:
                pending.append((s, e, pool.submit(self._sketch, texts[s:e])))
                if len(pending) >= _workers() + 1:
                    break
            while pending:
                s, e, fut = pending.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(
                        (nxt[0], nxt[1], pool.submit(self._sketch, texts[nxt[0] : nxt[1]]))
                    )
                yield s, fut.result()
                if progress is not None:
                    progress(e, n)

    def signatures(self, texts: Sequence[str]) -> U32:
        """(len(texts), num_perm) uint32 MinHash signatures."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for s, sk in self._sketch_chunks(texts):
            out[s : s + sk.sig.shape[0]] = sk.sig
        return out


def _densify(sig: U32) -> None:
    """Rotation densification: an empty bin takes the next non-empty bin's value (circular),
    offset by the distance, so two texts fill the same empty bin identically when their
    sources agree (Shrivastava & Li, ICML 2014). Rows with no shingle stay empty."""
    k = sig.shape[1]
    empty = sig == _SENTINEL
    rows = np.flatnonzero(empty.any(axis=1))
    if rows.size == 0:
        return
    sub = sig[rows]
    emp = empty[rows]
    big = np.int32(4 * k)
    j = np.arange(k, dtype=np.int32)
    idx = np.where(emp, big, j)
    ext = np.concatenate([idx, np.where(emp, big, j + k)], axis=1)
    nxt = np.minimum.accumulate(ext[:, ::-1], axis=1)[:, ::-1][:, :k]
    ok = nxt < big
    src = np.where(ok, nxt % k, 0)
    dist = (nxt - j).astype(np.uint32)
    filled = np.take_along_axis(sub, src, axis=1) + dist * _ROT
    filled &= np.uint32(0x7FFFFFFF)
    sub = np.where(emp & ok, filled, sub)
    sig[rows] = sub


# --------------------------------------------------------------------------------- LSH


def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising 0.2 * FP-area + 0.8 * FN-area of the LSH S-curve.

    False negatives weigh more because every candidate is verified exactly afterwards
    (a false positive costs a little time, a false negative loses a duplicate)."""
    grid = np.linspace(0.0, 1.0, 2001)
    best = (num_perm, 1)
    best_err = math.inf
    for r in range(1, num_perm + 1):
        b = num_perm // r
        p = 1.0 - (1.0 - grid**r) ** b
        lo, hi = grid <= threshold, grid >= threshold
        fp = float(np.trapezoid(p[lo], grid[lo]))
        fn = float(np.trapezoid(1.0 - p[hi], grid[hi]))
        err = 0.2 * fp + 0.8 * fn
        if err < best_err:
            best_err, best = err, (b, r)
    return best


def _band_keys(sig: U32, bands: int, rows: int) -> U64:
    """(n, bands) uint64 hash of each band; band t uses the strided bins t, t+bands, ..."""
    n = sig.shape[0]
    s = sig[:, : bands * rows].reshape(n, rows, bands).astype(np.uint64)
    h = np.full((n, bands), 0x243F6A8885A308D3, dtype=np.uint64)
    for i in range(rows):
        h ^= s[:, i, :]
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def _bucket_pairs(keys: U64, cap: int) -> tuple[I64, I64]:
    """Pairs of positions sharing a key; each member pairs with at most ``cap`` followers
    in its bucket (all pairs for buckets of up to cap + 1 members)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    if not same.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # Runs of equal keys.
    starts_mask = np.empty(sk.size, dtype=bool)
    starts_mask[0] = True
    starts_mask[1:] = ~same
    run_start = np.flatnonzero(starts_mask)
    run_len = np.diff(np.append(run_start, sk.size))
    multi = run_len >= 2
    run_start, run_len = run_start[multi], run_len[multi]
    # For each member at position a in a run of length m: pair with next min(m-1-a, cap).
    members = np.repeat(run_start, run_len) + _ragged_arange(run_len)
    pos_in_run = _ragged_arange(run_len)
    remaining = np.repeat(run_len, run_len) - 1 - pos_in_run
    cnt = np.minimum(remaining, cap)
    left = np.repeat(members, cnt)
    right = left + 1 + _ragged_arange(cnt)
    a, b = order[left], order[right]
    return np.minimum(a, b), np.maximum(a, b)


# -------------------------------------------------------------------- pair verification


@dataclass
class _Reps:
    """Texts collapsed by identical shingle multiset (exact duplicates after normalisation)."""

    rep_ids: I64  # original index of each representative (its first member)
    group_of: I64  # for every original text: its representative number, -1 if no shingle
    order: I64  # members of all groups, grouped by representative, ascending within a group
    offsets: I64  # group g is order[offsets[g] : offsets[g + 1]]

    def members(self, g: int) -> I64:
        return self.order[self.offsets[g] : self.offsets[g + 1]]

    def multi(self) -> I64:
        """Representative numbers of the groups with at least two members."""
        return np.flatnonzero(np.diff(self.offsets) >= 2)


def _collapse(content: U64) -> _Reps:
    n = content.size
    valid = np.flatnonzero(content != 0)
    group_of = np.full(n, -1, dtype=np.int64)
    if valid.size == 0:
        z = np.zeros(0, np.int64)
        return _Reps(z, group_of, z, np.zeros(1, np.int64))
    _, first, inverse = np.unique(content[valid], return_index=True, return_inverse=True)
    # Number representatives by first occurrence so that everything is in input order.
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    g = rank[inverse.ravel()]
    group_of[valid] = g
    rep_ids = valid[first[order]]
    members = valid[np.argsort(g, kind="stable")]
    offsets = np.zeros(rep_ids.size + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(g, minlength=rep_ids.size))
    return _Reps(rep_ids, group_of, members, offsets)


def _agreement(sig8: U8, a: I64, b: I64) -> npt.NDArray[np.float64]:
    return _agreement2(sig8, sig8, a, b)


def _agreement2(sa: U8, sb: U8, a: I64, b: I64, chunk: int = 65536) -> npt.NDArray[np.float64]:
    """Fraction of agreeing signature bytes, corrected for chance 8-bit agreement."""
    out = np.empty(a.size, dtype=np.float64)
    k = sa.shape[1]
    for s in range(0, a.size, chunk):
        e = min(s + chunk, a.size)
        eq = sa[a[s:e]] == sb[b[s:e]]
        out[s:e] = eq.sum(axis=1) / k
    # Correct for chance agreement of 8-bit truncated values (1/256 per bin).
    return np.clip((out - 1.0 / 256) / (1.0 - 1.0 / 256), 0.0, 1.0)


class _ShingleCache:
    """Distinct shingle codes of texts, computed in vectorised batches on demand."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts = texts
        self._sets: dict[int, U64] = {}

    def load(self, ids: I64) -> None:
        todo = [i for i in np.unique(ids).tolist() if i not in self._sets]
        for s in range(0, len(todo), _CHUNK):
            part = todo[s : s + _CHUNK]
            sets = _unique_per_text(
                _shingle_codes(_normalize_chunk([self._texts[i] for i in part]))
            )
            self._sets.update(zip(part, sets, strict=True))

    def __getitem__(self, i: int) -> U64:
        return self._sets[i]


def _verify(
    cache: _ShingleCache, a: I64, b: I64, threshold: float
) -> tuple[I64, I64, npt.NDArray[np.float64]]:
    cache.load(np.concatenate([a, b]))
    keep_a: list[int] = []
    keep_b: list[int] = []
    sims: list[float] = []
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        sa, sb = cache[i], cache[j]
        if sa.size == 0 or sb.size == 0:
            continue
        inter = _intersection_size(sa, sb)
        union = sa.size + sb.size - inter
        sim = inter / union
        if sim < threshold:
            continue
        if min(sa.size, sb.size) < MIN_SHINGLES and inter != union:
            continue
        keep_a.append(i)
        keep_b.append(j)
        sims.append(sim)
    return (
        np.asarray(keep_a, dtype=np.int64),
        np.asarray(keep_b, dtype=np.int64),
        np.asarray(sims, dtype=np.float64),
    )


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
        return [(min(x, y), max(x, y), sim) for x in ma.tolist() for y in mb.tolist() if x != y]
    x, y = int(ma[0]), int(mb[0])
    return [(min(x, y), max(x, y), sim)]


@dataclass
class _Index:
    """Sketch of a corpus, collapsed to representatives, ready for banding."""

    reps: _Reps
    keys: U64  # (n_reps, bands)
    sig8: U8  # (n_reps, num_perm) low byte of each signature value


def _build_index(
    texts: Sequence[str],
    hasher: MinHasher,
    bands: int,
    rows: int,
    progress: Callable[[int, int], None] | None = None,
) -> _Index:
    n = len(texts)
    k = hasher.num_perm
    content = np.zeros(n, dtype=np.uint64)
    keys = np.empty((n, bands), dtype=np.uint64)
    sig8 = np.empty((n, k), dtype=np.uint8)
    for s, sk in hasher._sketch_chunks(texts, progress):
        e = s + sk.sig.shape[0]
        content[s:e] = sk.content
        keys[s:e] = _band_keys(sk.sig, bands, rows)
        sig8[s:e] = sk.sig.astype(np.uint8)
    reps = _collapse(content)
    return _Index(reps, keys[reps.rep_ids], sig8[reps.rep_ids])


def _band_candidates(keys: U64) -> tuple[I64, I64]:
    """Distinct candidate pairs (a < b) of rows sharing any band key."""
    bands = keys.shape[1]
    cols = [np.ascontiguousarray(keys[:, t]) for t in range(bands)]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        parts = list(pool.map(lambda c: _bucket_pairs(c, _MAX_BUCKET_PAIRS), cols))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    enc = np.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))
    return _decode_pairs(enc)


def _cross_bucket_pairs(qkeys: U64, ckeys: U64, cap: int) -> tuple[I64, I64]:
    """(query row, corpus row) pairs sharing a key; at most ``cap`` corpus rows per query."""
    order = np.argsort(ckeys, kind="stable")
    sk = ckeys[order]
    lo = np.searchsorted(sk, qkeys, side="left")
    hi = np.searchsorted(sk, qkeys, side="right")
    cnt = np.minimum(hi - lo, cap)
    q = np.repeat(np.arange(qkeys.size, dtype=np.int64), cnt)
    c = order[np.repeat(lo, cnt) + _ragged_arange(cnt)]
    return q, c


def _cross_candidates(qkeys: U64, ckeys: U64) -> tuple[I64, I64]:
    bands = qkeys.shape[1]
    cols = [
        (np.ascontiguousarray(qkeys[:, t]), np.ascontiguousarray(ckeys[:, t])) for t in range(bands)
    ]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        parts = list(
            pool.map(lambda qc: _cross_bucket_pairs(qc[0], qc[1], _MAX_BUCKET_PAIRS), cols)
        )
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    enc = np.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))
    return _decode_pairs(enc)


def _decode_pairs(enc: U64) -> tuple[I64, I64]:
    hi = (enc >> np.uint64(32)).astype(np.int64)
    lo = (enc & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return hi, lo


def near_duplicate_pairs(
    texts: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, int, float]]:
    """All pairs ``(i, j, jaccard)`` with ``i < j`` and exact shingle Jaccard >= threshold.

    Candidates come from MinHash LSH, and every reported pair is verified with the exact
    Jaccard of the shingle sets. Texts without shingles never pair; texts with fewer than
    ``MIN_SHINGLES`` distinct shingles pair only with texts of identical shingle set.

    Texts with an identical shingle multiset (exact duplicates after normalisation) form a
    group. For groups so large that listing all their pairs would exceed a few thousand pairs,
    a spanning set is returned instead (a chain inside a group, a single link between two
    such groups), so group the result with ``group_pairs`` rather than relying on every pair
    being listed. LSH buckets holding many distinct texts are likewise bounded (each member
    is compared with at most 64 others of that bucket, in every band).

    The result is sorted. ``progress(done, total)`` is called after each chunk of texts is
    sketched and once more at the end.
    """
    n = len(texts)
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    hasher = MinHasher(DEFAULT_NUM_PERM, seed=1)
    bands, rows = _lsh_params(threshold, DEFAULT_NUM_PERM)
    index = _build_index(texts, hasher, bands, rows, progress)
    reps = index.reps
    a, b = _band_candidates(index.keys)
    if a.size:
        est = _agreement(index.sig8, a, b)
        keep = est >= threshold - _ESTIMATE_SLACK
        a, b = a[keep], b[keep]
    cache = _ShingleCache(texts)
    va, vb, sims = _verify(cache, reps.rep_ids[a], reps.rep_ids[b], threshold)
    out: list[tuple[int, int, float]] = []
    for g in reps.multi().tolist():
        out.extend(_within_group_pairs(reps.members(g)))
    for x, y, sim in zip(va.tolist(), vb.tolist(), sims.tolist(), strict=True):
        gx, gy = int(reps.group_of[x]), int(reps.group_of[y])
        out.extend(_between_groups_pairs(reps.members(gx), reps.members(gy), sim))
    out.sort()
    if progress is not None:
        progress(n, n)
    return out


def cross_pairs(
    queries: Sequence[str],
    corpus: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[tuple[int, int, float]]:
    """``(query_index, corpus_index, jaccard)`` for every query/corpus pair with exact shingle
    Jaccard >= threshold (leakage between two datasets). Sorted."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    if len(queries) == 0 or len(corpus) == 0:
        return []
    hasher = MinHasher(DEFAULT_NUM_PERM, seed=1)
    bands, rows = _lsh_params(threshold, DEFAULT_NUM_PERM)
    qi = _build_index(queries, hasher, bands, rows)
    ci = _build_index(corpus, hasher, bands, rows)
    nq = qi.reps.rep_ids.size
    if nq == 0 or ci.reps.rep_ids.size == 0:
        return []
    a, b = _cross_candidates(qi.keys, ci.keys)
    if a.size:
        est = _agreement2(qi.sig8, ci.sig8, a, b)
        keep = est >= threshold - _ESTIMATE_SLACK
        a, b = a[keep], b[keep]
    out: list[tuple[int, int, float]] = []
    qcache, ccache = _ShingleCache(queries), _ShingleCache(corpus)
    qa, cb = qi.reps.rep_ids[a], ci.reps.rep_ids[b]
    qcache.load(qa)
    ccache.load(cb)
    for x, y in zip(qa.tolist(), cb.tolist(), strict=True):
        sa, sb = qcache[x], ccache[y]
        if sa.size == 0 or sb.size == 0:
            continue
        inter = _intersection_size(sa, sb)
        union = sa.size + sb.size - inter
        sim = inter / union
        if sim < threshold or (min(sa.size, sb.size) < MIN_SHINGLES and inter != union):
            continue
        for q in qi.reps.members(int(qi.reps.group_of[x])).tolist():
            for c in ci.reps.members(int(ci.reps.group_of[y])).tolist():
                out.append((q, c, sim))
    out.sort()
    return out


# ---------------------------------------------------------------------------- grouping


def group_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components (size >= 2) of the graph on ``range(n)`` with edges ``pairs``.

    Each group is sorted; groups are sorted by their first member. Extra tuple fields
    (e.g. a similarity) are ignored."""
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for pair in pairs:
        i, j = int(pair[0]), int(pair[1])
        ri, rj = find(i), find(j)
        if ri != rj:
            if ri < rj:
                parent[rj] = ri
            else:
                parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for x in range(n):
        r = find(x)
        groups.setdefault(r, []).append(x)
    return sorted((g for g in groups.values() if len(g) >= 2), key=lambda g: g[0])

/* qcow2x fuzzing: helpers shared by the libFuzzer targets in fuzz/.
 *
 * walk_image() reads an open image the way a client would, within a
 * fixed budget so that a huge declared virtual size cannot stall the
 * fuzzer:
 *   - block status and reads of the first WALK_PREFIX bytes, extent by
 *     extent, and the same prefix again in one read (both must agree);
 *   - block status and reads of every allocated L1 entry's range (the
 *     places where a fuzzed image really has data), up to WALK_L1_MAX
 *     entries and WALK_BUDGET bytes in all;
 *   - the last bytes of the disk and a few pseudo-random samples.
 * Invariants checked (a failure aborts, so the fuzzer reports it):
 *   - extents are consecutive, non-empty, inside the request, with
 *     valid flags;
 *   - a range that block status calls a hole or zero reads as zeros;
 *   - reading a range in one request or in pieces gives the same bytes.
 * Errors from the library (EIO on corrupt metadata, ...) are expected
 * and ignored: only crashes, hangs, leaks, oversized allocations and
 * the invariants above are findings.
 */
#ifndef QCX_FUZZ_COMMON_H
#define QCX_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "image.h"
#include "io.h"

#define WALK_PREFIX (4ULL << 20)        /* linear walk at the start */
#define WALK_BUDGET (4ULL << 20)        /* bytes read per input, in all */
#define WALK_L1_MAX 64                  /* allocated L1 entries walked */
#define WALK_EXTENT_READ (32ULL << 10)  /* bytes read at each end of an extent */
#define WALK_MAX_EXTENTS 512            /* extents per block status call */
#define WALK_SAMPLES 16

#define FUZZ_FAIL(...) do {                                     \
    fprintf (stderr, "qcx-fuzz: invariant violated: ");         \
    fprintf (stderr, __VA_ARGS__);                              \
    fputc ('\n', stderr);                                       \
    abort ();                                                   \
  } while (0)

static inline uint64_t
fuzz_hash (const uint8_t *data, size_t size)
{
  uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a over at most 4 KiB */
  size_t n = size < 4096 ? size : 4096;

  for (size_t i = 0; i < n; i++)
    h = (h ^ data[i]) * 0x100000001b3ULL;
  return h ^ size;
}

static inline uint64_t
fuzz_rand (uint64_t *s)
{
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
  x ^= x << 13; x ^= x >> 7; x ^= x << 17;
  return *s = x;
}

static inline uint64_t
fuzz_le (const uint8_t *p, unsigned n)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

/* The harness's own loops are not what the fuzzer should learn from. */
#define FUZZ_NO_COVERAGE __attribute__ ((no_sanitize ("coverage")))

FUZZ_NO_COVERAGE static inline void
fuzz_expect_zero (const uint8_t *buf, uint64_t len, uint64_t offset,
                  const char *what)
{
  static const uint8_t zeroes[4096];
  uint64_t i;

  for (i = 0; i + sizeof zeroes <= len; i += sizeof zeroes)
    if (memcmp (buf + i, zeroes, sizeof zeroes) != 0)
      break;
  for (; i < len; i++)
    if (buf[i] != 0)
      FUZZ_FAIL ("%s: block status says hole/zero at 0x%llx+%llu but byte "
                 "0x%llx reads 0x%02x", what, (unsigned long long) offset,
                 (unsigned long long) len,
                 (unsigned long long) (offset + i), buf[i]);
}

/* Image files in inputs: either the file byte for byte, or a sparse
 * container (most of a qcow2 file is zeros, and mutations of zeros
 * between clusters teach the fuzzer nothing):
 *   "QCXS", u32 LE file size (cut to FUZZ_MAX_FILE), then chunks
 *   until the input ends: u32 LE offset, u16 LE length, the bytes
 *   (cut to what the input and the file size hold).  Unwritten bytes
 *   are zero.
 * fuzz_decode_image() returns the file in a heap buffer of exactly its
 * size (so ASan sees overruns); the caller frees it.
 */
#define FUZZ_MAX_FILE (32ULL << 20)

static inline uint8_t *
fuzz_decode_image (const uint8_t *data, size_t size, size_t *file_size)
{
  uint8_t *f;

  if (size < 8 || memcmp (data, "QCXS", 4) != 0) {
    f = malloc (size ? size : 1);
    if (f == NULL)
      abort ();
    memcpy (f, data, size);
    *file_size = size;
    return f;
  }
  *file_size = fuzz_le (data + 4, 4);
  if (*file_size > FUZZ_MAX_FILE)
    *file_size = FUZZ_MAX_FILE;
  f = calloc (1, *file_size ? *file_size : 1);   /* large: lazily zeroed */
  if (f == NULL)
    abort ();
  for (size_t p = 8; p + 6 <= size; ) {
    uint64_t off = fuzz_le (data + p, 4), len = fuzz_le (data + p + 4, 2);
    p += 6;
    if (len > size - p)
      len = size - p;
    if (off < *file_size)
      memcpy (f + off, data + p,
              len < *file_size - off ? len : *file_size - off);
    p += len;
  }
  return f;
}

/* Known, reported, not yet fixed bugs: with QCX_FUZZ_SKIP_KNOWN=1 the
 * targets skip inputs that would hit them, so a long run can find
 * other things.  Each check mirrors the bug's trigger; remove it once
 * the library is fixed (the regression inputs keep testing it).
 */
static inline bool
fuzz_skip_known (void)
{
  static int skip = -1;
  if (skip == -1) {
    const char *s = getenv ("QCX_FUZZ_SKIP_KNOWN");
    skip = s && *s && strcmp (s, "0") != 0;
  }
  return skip;
}

static inline uint64_t
fuzz_be (const uint8_t *p, unsigned n)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* header.c parse_extensions(): the last extension's padding may carry
 * the walk past the end of the header area (then end - off wraps).
 * tests/fuzz-regressions/read-header-extension-padding-overrun.bin
 */
static inline bool
fuzz_known_ext_overrun (const uint8_t *f, size_t size)
{
  uint64_t version, cb, hl = 72, buflen, end, off, bfo;

  if (!fuzz_skip_known () || size < 72 || fuzz_be (f, 4) != 0x514649fb)
    return false;
  version = fuzz_be (f + 4, 4);
  cb = fuzz_be (f + 20, 4);
  if ((version != 2 && version != 3) || cb < 9 || cb > 21)
    return false;
  if (version == 3) {
    if (size < 104)
      return false;
    hl = fuzz_be (f + 100, 4);
  }
  buflen = (1ULL << cb) < size ? (1ULL << cb) : size;
  if (hl > buflen)
    return false;
  bfo = fuzz_be (f + 8, 8);
  end = buflen;
  if (bfo != 0 && bfo < end)
    end = bfo;
  if (end < hl)
    end = hl;
  for (off = hl; off <= end && end - off >= 8; ) {
    uint64_t type = fuzz_be (f + off, 4), len = fuzz_be (f + off + 4, 4);
    if (type == 0 || len > end - off - 8)
      return false;
    off += 8 + (len + 7) / 8 * 8;
    if (off > end)
      return true;
  }
  return false;
}

/* A layer (image alone, or an image over a chain) as the walker sees it. */
struct fuzz_target_ops {
  uint64_t size;
  int (*extents) (void *t, uint64_t offset, uint64_t count,
                  qcow2_extent_cb cb, void *opaque, struct qcx_err *err);
  int (*read) (void *t, void *buf, uint64_t count, uint64_t offset,
               struct qcx_err *err);
  /* Flags meaning "reads as zero" (checked against the bytes). */
  unsigned zero_flags;
  void *t;
  const char *what;
};

struct fuzz_extent { uint64_t offset, length; unsigned flags; };

struct fuzz_extent_list {
  struct fuzz_extent e[WALK_MAX_EXTENTS];
  unsigned nr;
  uint64_t next;                /* where the next extent must start */
  uint64_t end;                 /* end of the request */
  const char *what;
};

static int
fuzz_extent_cb (void *opaque, uint64_t offset, uint64_t length,
                unsigned flags)
{
  struct fuzz_extent_list *l = opaque;

  if (length == 0)
    FUZZ_FAIL ("%s: empty extent at 0x%llx", l->what,
               (unsigned long long) offset);
  if (offset != l->next)
    FUZZ_FAIL ("%s: extent at 0x%llx but the previous one ended at 0x%llx",
               l->what, (unsigned long long) offset,
               (unsigned long long) l->next);
  if (flags & ~(QCX_EXTENT_HOLE | QCX_EXTENT_ZERO))
    FUZZ_FAIL ("%s: extent flags 0x%x", l->what, flags);
  if (l->nr > 0 && offset + length > l->end && offset >= l->end)
    FUZZ_FAIL ("%s: extent 0x%llx+%llu starts past the request end 0x%llx",
               l->what, (unsigned long long) offset,
               (unsigned long long) length, (unsigned long long) l->end);
  if (offset + length < offset)
    FUZZ_FAIL ("%s: extent length overflows", l->what);
  l->next = offset + length;
  if (l->nr == WALK_MAX_EXTENTS)
    return -1;                  /* enough: stop */
  l->e[l->nr++] = (struct fuzz_extent) { offset, length, flags };
  return 0;
}

struct fuzz_walk {
  const struct fuzz_target_ops *ops;
  uint64_t budget;
  uint64_t rng;
};

/* Read [offset, offset+len) into a buffer of exactly that size (so ASan
 * sees any overrun); returns it or NULL on a library error.
 */
static uint8_t *
fuzz_read (struct fuzz_walk *w, uint64_t offset, uint64_t len)
{
  const struct fuzz_target_ops *o = w->ops;
  struct qcx_err err;
  uint8_t *buf;

  if (len == 0 || offset >= o->size)
    return NULL;
  if (len > o->size - offset)
    len = o->size - offset;
  if (len > w->budget)
    return NULL;
  w->budget -= len;
  buf = malloc (len);
  if (buf == NULL)
    abort ();
  if (o->read (o->t, buf, len, offset, &err) == -1) {
    free (buf);
    return NULL;
  }
  return buf;
}

/* Block status over [offset, offset+len), then read each extent (up to
 * WALK_EXTENT_READ bytes of it at each end) and check zero extents.
 */
static void
fuzz_walk_range (struct fuzz_walk *w, uint64_t offset, uint64_t len)
{
  const struct fuzz_target_ops *o = w->ops;
  static struct fuzz_extent_list l;
  struct qcx_err err;

  if (offset >= o->size || len == 0 || w->budget == 0)
    return;
  if (len > o->size - offset)
    len = o->size - offset;
  l.nr = 0;
  l.next = offset;
  l.end = offset + len;
  l.what = o->what;
  if (o->extents (o->t, offset, len, fuzz_extent_cb, &l, &err) == -1)
    l.nr = 0;
  else if (l.nr == 0)
    FUZZ_FAIL ("%s: block status of 0x%llx+%llu succeeded with no extent",
               o->what, (unsigned long long) offset,
               (unsigned long long) len);

  for (unsigned i = 0; i < l.nr && w->budget > 0; i++) {
    struct fuzz_extent e = l.e[i];
    uint64_t parts[2][2];
    unsigned np = 1;

    if (e.offset + e.length > l.end)
      e.length = l.end - e.offset;      /* may run past the request */
    parts[0][0] = e.offset;
    parts[0][1] = e.length < WALK_EXTENT_READ ? e.length : WALK_EXTENT_READ;
    if (e.length > 2 * WALK_EXTENT_READ) {
      parts[1][0] = e.offset + e.length - WALK_EXTENT_READ;
      parts[1][1] = WALK_EXTENT_READ;
      np = 2;
    }
    for (unsigned p = 0; p < np; p++) {
      uint8_t *buf = fuzz_read (w, parts[p][0], parts[p][1]);
      if (buf == NULL)
        continue;
      if (e.flags & o->zero_flags)
        fuzz_expect_zero (buf, parts[p][1], parts[p][0], o->what);
      free (buf);
    }
  }
}

/* Read [offset, offset+len) whole and in odd-sized pieces: same bytes. */
static void
fuzz_read_twice (struct fuzz_walk *w, uint64_t offset, uint64_t len)
{
  uint8_t *whole = fuzz_read (w, offset, len), *piece;
  uint64_t pos = 0, step;

  if (whole == NULL)
    return;
  if (len > w->ops->size - offset)
    len = w->ops->size - offset;
  step = 4096 + 511 + (fuzz_rand (&w->rng) % 65536);
  while (pos < len) {
    uint64_t n = len - pos < step ? len - pos : step;
    piece = fuzz_read (w, offset + pos, n);
    if (piece) {
      if (memcmp (piece, whole + pos, n) != 0)
        FUZZ_FAIL ("%s: reading 0x%llx+%llu in one request and in pieces "
                   "gives different bytes", w->ops->what,
                   (unsigned long long) offset, (unsigned long long) len);
      free (piece);
    }
    pos += n;
  }
  free (whole);
}

/* The whole walk.  L1 lists the layer's L1 table (may be NULL) so the
 * walker can find where the data is; TABLE_SHIFT is log2 of the guest
 * bytes one L1 entry maps.
 */
static void
fuzz_walk (const struct fuzz_target_ops *o, const uint64_t *l1,
           uint64_t l1_size, unsigned table_shift, uint64_t seed)
{
  struct fuzz_walk w = { o, WALK_BUDGET, seed };
  uint64_t prefix = o->size < WALK_PREFIX ? o->size : WALK_PREFIX;
  unsigned walked = 0;

  if (o->size == 0)
    return;
  fuzz_walk_range (&w, 0, prefix);
  fuzz_read_twice (&w, 0, prefix < (256u << 10) ? prefix : (256u << 10));

  for (uint64_t i = 0; l1 && i < l1_size && walked < WALK_L1_MAX; i++) {
    uint64_t start;
    if ((l1[i] & QCOW2_L1E_OFFSET_MASK) == 0)
      continue;
    if (table_shift >= 64 || i > (UINT64_MAX >> table_shift))
      break;
    start = i << table_shift;
    if (start >= o->size)
      break;
    walked++;
    if (start + (1ULL << table_shift) <= prefix)
      continue;                 /* done above */
    fuzz_walk_range (&w, start, 1ULL << table_shift);
  }

  /* The end of the disk and some samples. */
  fuzz_walk_range (&w, o->size > 65536 ? o->size - 65536 : 0, 65536);
  for (unsigned i = 0; i < WALK_SAMPLES; i++) {
    uint64_t off = fuzz_rand (&w.rng) % o->size;
    uint64_t len = 1 + fuzz_rand (&w.rng) % 8192;
    uint8_t *buf = fuzz_read (&w, off, len);
    free (buf);
    if (i % 4 == 0)
      fuzz_walk_range (&w, off, len * 64);
  }
}

/* Adapters for one image. */
static int
fuzz_image_extents (void *t, uint64_t offset, uint64_t count,
                    qcow2_extent_cb cb, void *opaque, struct qcx_err *err)
{
  return qcow2_image_extents (t, offset, count, 0, cb, opaque, err);
}

static int
fuzz_image_read (void *t, void *buf, uint64_t count, uint64_t offset,
                 struct qcx_err *err)
{
  return qcow2_image_read (t, buf, count, offset, err);
}

static inline void
fuzz_walk_image (struct qcow2_image *img, uint64_t seed, const char *what)
{
  struct fuzz_target_ops o = {
    .size = qcow2_image_size (img),
    .extents = fuzz_image_extents,
    .read = fuzz_image_read,
    /* The image alone reads deferred (HOLE) space as zeros too. */
    .zero_flags = QCX_EXTENT_HOLE | QCX_EXTENT_ZERO,
    .t = img,
    .what = what,
  };

  fuzz_walk (&o, img->l1_table, img->header.l1_size,
             img->header.l2_bits + img->header.cluster_bits, seed);
}

#endif /* QCX_FUZZ_COMMON_H */

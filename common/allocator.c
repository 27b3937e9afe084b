/* qcow2x common library: host cluster allocation (see allocator.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "allocator.h"
#include "image.h"
#include "refcount.h"

static bool
is_used (const struct qcow2_allocator *a, uint64_t c)
{
  return c < a->words * 64 && (a->used[c / 64] >> (c % 64)) & 1;
}

static int
reserve_words (struct qcow2_allocator *a, uint64_t clusters,
               struct qcx_err *err)
{
  uint64_t need = clusters / 64 + 1, cap = a->words ? a->words : 1024;
  uint64_t *p;

  if (need <= a->words)
    return 0;
  while (cap < need)
    cap *= 2;
  p = realloc (a->used, cap * sizeof *p);
  if (p == NULL)
    return qcx_error (err, errno, "allocator bitmap: %s", qcx_strerror (errno));
  memset (p + a->words, 0, (cap - a->words) * sizeof *p);
  a->used = p;
  a->words = cap;
  return 0;
}

static void
set_used (struct qcow2_allocator *a, uint64_t c, uint64_t n, bool used)
{
  for (uint64_t i = c; i < c + n; i++) {
    if (used)
      a->used[i / 64] |= 1ULL << (i % 64);
    else
      a->used[i / 64] &= ~(1ULL << (i % 64));
  }
}

/* Mark the clusters refcount block TI (BLOCK, one cluster of BYTES
 * bytes, covering clusters from BASE) counts.  Zero words are skipped 64 bits at a time: in a sparse
 * image most of a block is zero, and the scan must cost what the block
 * holds, not the number of entries it could describe.
 */
static int
scan_block (struct qcow2_allocator *a, const uint8_t *block, uint64_t bytes,
            uint64_t base, unsigned order, uint64_t file_clusters,
            uint64_t ti, struct qcx_err *err)
{
  uint64_t per_word = 64 >> order;      /* entries in 8 bytes */

  for (uint64_t w = 0; w < bytes / 8; w++) {
    uint64_t word;

    memcpy (&word, block + 8 * w, 8);
    if (word == 0)
      continue;
    for (uint64_t i = w * per_word; i < (w + 1) * per_word; i++) {
      if (qcow2_refblock_get (block, i, order) == 0)
        continue;
      /* Counted clusters past the end of the file: the refcounts do not
       * describe this file (and would cost memory in proportion to a
       * number the file chooses).
       */
      if (base + i >= file_clusters)
        return qcx_error (err, EINVAL, "refcount block %" PRIu64 " counts "
                          "host cluster 0x%" PRIx64 " beyond the end of "
                          "the file", ti, (base + i) * bytes);
      if (reserve_words (a, base + i + 1, err) == -1)
        return -1;
      set_used (a, base + i, 1, true);
      if (base + i + 1 > a->end)
        a->end = base + i + 1;
    }
  }
  return 0;
}

/* Scan every refcount block once.  Blocks are read straight from the
 * file: this runs before the first refcount change, so the cache holds
 * nothing the disk does not.
 */
static int
build (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t cs = img->header.cluster_size;
  uint64_t file_clusters = (qcx_io_size (&img->io) + cs - 1) / cs;
  uint8_t *block = malloc (cs);
  int r = -1;

  if (block == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
  /* `end` follows the refcounts, not the file size: a sparse file may
   * extend far past its last counted cluster, and everything past that
   * cluster is free.
   */
  a->end = 0;
  if (reserve_words (a, 0, err) == -1)
    goto out;
  for (uint64_t ti = 0; ti < rc->table_entries; ti++) {
    uint64_t base = ti * rc->block_entries;
    if (rc->table[ti] == 0)
      continue;
    if (qcx_io_pread (&img->io, block, cs, rc->table[ti], "refcount block",
                      err) == -1)
      goto out;
    if (scan_block (a, block, cs, base, rc->order, file_clusters, ti,
                    err) == -1)
      goto out;
  }
  a->hint = 0;
  a->zero_from = qcx_io_size (&img->io);
  a->built = true;
  r = 0;
 out:
  free (block);
  return r;
}

static int
ensure_built (struct qcow2_image *img, struct qcx_err *err)
{
  return img->alloc.built ? 0 : build (img, err);
}

int
qcow2_allocator_build (struct qcow2_image *img, struct qcx_err *err)
{
  return ensure_built (img, err);
}

void
qcow2_allocator_free (struct qcow2_image *img)
{
  free (img->alloc.used);
  free (img->alloc.pending);
  memset (&img->alloc, 0, sizeof img->alloc);
}

/* Extend the file so that clusters below END exist: reads of a fresh
 * cluster must not hit the end of the file (io.c is strict about it).
 * The file grows in steps: the bytes added are zero and unreferenced,
 * which `zero_from` keeps track of.
 */
static int
cover_in_file (struct qcow2_image *img, uint64_t end, struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;
  uint64_t size = qcx_io_size (&img->io), bytes = end * cs, step;

  if (size >= bytes)
    return 0;
  step = QCOW2_FILE_GROWTH > 8 * cs ? QCOW2_FILE_GROWTH : 8 * cs;
  if (bytes < size + step)
    bytes = (size + step + cs - 1) / cs * cs;
  return qcx_io_truncate (&img->io, bytes, err);
}

static int
take_range (struct qcow2_image *img, uint64_t c, uint64_t n,
            struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  uint64_t end_bytes = (c + n) * img->header.cluster_size;

  if (reserve_words (a, c + n, err) == -1)
    return -1;
  set_used (a, c, n, true);
  if (c + n > a->end)
    a->end = c + n;
  if (c == a->hint)
    a->hint = c + n;
  if (end_bytes > a->zero_from)
    a->zero_from = end_bytes;
  return cover_in_file (img, c + n, err);
}

int
qcow2_allocator_trim_file (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  uint64_t end_bytes = a->end * img->header.cluster_size;

  /* Only the zero tail the allocator itself added may go. */
  if (img->readonly || !a->built || a->zero_from > end_bytes ||
      qcx_io_size (&img->io) <= end_bytes)
    return 0;
  if (qcx_io_truncate (&img->io, end_bytes, err) == -1)
    return -1;
  a->zero_from = end_bytes;
  return 0;
}

int
qcow2_allocator_take_at_end (struct qcow2_image *img, uint64_t n,
                             uint64_t *cluster, struct qcx_err *err)
{
  if (ensure_built (img, err) == -1)
    return -1;
  *cluster = img->alloc.end;
  return take_range (img, *cluster, n, err);
}

/* Lowest run of N free clusters, or the end.  A run may extend past
 * `end`, which is free by definition.
 */
static uint64_t
find_free (struct qcow2_allocator *a, uint64_t n)
{
  uint64_t c = a->hint, run = 0, start = 0;

  /* Skip whole used words quickly. */
  while (c < a->end && c % 64 == 0 && c / 64 < a->words &&
         a->used[c / 64] == UINT64_MAX)
    c += 64;
  a->hint = c;
  for (; c < a->end; c++) {
    if (c % 64 == 0 && run == 0 && a->used[c / 64] == UINT64_MAX) {
      c += 63;
      continue;
    }
    if (is_used (a, c)) {
      run = 0;
      continue;
    }
    if (run++ == 0)
      start = c;
    if (run == n)
      return start;
  }
  return run ? start : a->end;
}

int
qcow2_allocator_take (struct qcow2_image *img, uint64_t n, uint64_t *cluster,
                      struct qcx_err *err)
{
  if (ensure_built (img, err) == -1)
    return -1;
  *cluster = find_free (&img->alloc, n);
  return take_range (img, *cluster, n, err);
}

int
qcow2_alloc_clusters (struct qcow2_image *img, uint64_t n,
                      uint64_t *host_offset, bool *zeroed,
                      struct qcx_err *err)
{
  uint64_t c, zero_from;

  if (ensure_built (img, err) == -1)
    return -1;
  zero_from = img->alloc.zero_from;
  if (qcow2_allocator_take (img, n, &c, err) == -1)
    return -1;
  if (zeroed)
    *zeroed = c * img->header.cluster_size >= zero_from;
  /* Refcounts first: the caller will reference these clusters only
   * after this returns (allocation order, design.md §4).
   */
  for (uint64_t i = 0; i < n; i++)
    if (qcow2_refcount_update (img, c + i, 1, NULL, err) == -1)
      return -1;
  *host_offset = c * img->header.cluster_size;
  return 0;
}

int
qcow2_alloc_compressed_bytes (struct qcow2_image *img, uint64_t size,
                              uint64_t *host_offset, struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  uint64_t cs = img->header.cluster_size;
  uint64_t next = a->compressed_next, room = next ? cs - (next & (cs - 1)) : 0;
  uint64_t n, host, v;

  if (ensure_built (img, err) == -1)
    return -1;
  /* Share the partly filled cluster unless its refcount is at its
   * maximum (1-bit refcounts: never).
   */
  if (room > 0 &&
      qcow2_refcount_get (img, next / cs, &v, err) == -1)
    return -1;
  if (room > 0 && v >= img->refcounts.max)
    room = 0;
  if (room >= size) {
    if (qcow2_refcount_update (img, next / cs, 1, NULL, err) == -1)
      return -1;
    *host_offset = next;
  }
  else {
    /* New clusters for the rest; they continue the partly filled one
     * when the allocator places them right after it (the usual case
     * for a sequential writer), otherwise its tail stays unused.
     */
    n = (size - room + cs - 1) / cs;
    if (qcow2_alloc_clusters (img, n, &host, NULL, err) == -1)
      return -1;
    if (room > 0 && host == next + room) {
      if (qcow2_refcount_update (img, next / cs, 1, NULL, err) == -1)
        return -1;
      *host_offset = next;
    }
    else
      *host_offset = host;      /* n >= 1 clusters hold SIZE <= cs */
  }
  next = *host_offset + size;
  a->compressed_next = (next & (cs - 1)) ? next : 0;
  return 0;
}

int
qcow2_allocator_free_later (struct qcow2_image *img, uint64_t host_offset,
                            uint64_t n, struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  uint64_t c = host_offset / img->header.cluster_size;

  if (n == 0)
    return 0;
  if (a->nr_pending > 0) {
    struct qcow2_free_range *last = &a->pending[a->nr_pending - 1];
    if (last->cluster + last->count == c) {
      last->count += n;
      a->pending_clusters += n;
      return 0;
    }
  }
  if (a->nr_pending == a->pending_cap) {
    size_t cap = a->pending_cap ? a->pending_cap * 2 : 64;
    struct qcow2_free_range *p = realloc (a->pending, cap * sizeof *p);
    if (p == NULL)
      return qcx_error (err, errno, "free queue: %s", qcx_strerror (errno));
    a->pending = p;
    a->pending_cap = cap;
  }
  a->pending[a->nr_pending++] = (struct qcow2_free_range) { c, n };
  a->pending_clusters += n;
  return 0;
}

void
qcow2_allocator_take_pending (struct qcow2_image *img,
                              struct qcow2_free_range **ranges, size_t *nr)
{
  struct qcow2_allocator *a = &img->alloc;

  *ranges = a->pending;
  *nr = a->nr_pending;
  a->pending = NULL;
  a->nr_pending = a->pending_cap = 0;
  a->pending_clusters = 0;
}

int
qcow2_allocator_apply_frees (struct qcow2_image *img,
                             const struct qcow2_free_range *ranges, size_t nr,
                             struct qcx_err *err)
{
  struct qcow2_allocator *a = &img->alloc;
  uint64_t cs = img->header.cluster_size;

  if (nr > 0 && ensure_built (img, err) == -1)
    return -1;
  for (size_t r = 0; r < nr; r++) {
    for (uint64_t c = ranges[r].cluster;
         c < ranges[r].cluster + ranges[r].count; c++) {
      uint64_t v;
      if (qcow2_refcount_update (img, c, -1, &v, err) == -1)
        return -1;
      if (v != 0)
        continue;
      set_used (a, c, 1, false);
      /* A free cluster is no place to pack compressed data into. */
      if (a->compressed_next / cs == c)
        a->compressed_next = 0;
      if (c < a->hint)
        a->hint = c;
      qcx_io_punch_hole (&img->io, c * cs, cs);
    }
  }
  return 0;
}

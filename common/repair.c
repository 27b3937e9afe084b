/* qcow2x common library: repairing a dirty image (see repair.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "image.h"
#include "repair.h"

/* Every counted cluster must have an existing refcount block and a
 * count the refcount width can hold; checked before anything is
 * written.
 */
static void
check_repairable (struct qcow2_image *img, const uint16_t *counts,
                  uint64_t nr, char *problem, size_t problem_len)
{
  const struct qcow2_refcounts *rc = &img->refcounts;
  uint64_t cs = img->header.cluster_size;

  for (uint64_t c = 0; c < nr; c++) {
    uint64_t ti = c / rc->block_entries;
    if (counts[c] == 0)
      continue;
    if (ti >= rc->table_entries || rc->table[ti] == 0) {
      snprintf (problem, problem_len, "host cluster 0x%" PRIx64 " is in use "
                "but has no refcount block, and repairing that is not "
                "supported", c * cs);
      return;
    }
    if (counts[c] == UINT16_MAX || counts[c] > rc->max) {
      snprintf (problem, problem_len, "host cluster 0x%" PRIx64 " has %u "
                "references, more than %u-bit refcounts hold", c * cs,
                counts[c], 1u << rc->order);
      return;
    }
  }
}

/* Set each refcount in an existing block to its count.  A block is
 * read once; only the entries that differ are updated.
 */
static int
rewrite_refcounts (struct qcow2_image *img, const uint16_t *counts,
                   uint64_t nr, uint64_t *fixed, struct qcx_err *err)
{
  struct qcow2_refcounts *rc = &img->refcounts;

  *fixed = 0;
  for (uint64_t ti = 0; ti < rc->table_entries; ti++) {
    const uint8_t *block;
    if (rc->table[ti] == 0)
      continue;
    block = tablecache_get (&rc->blocks, &img->io, rc->table[ti], err);
    if (block == NULL)
      return -1;
    for (uint64_t i = 0; i < rc->block_entries; i++) {
      uint64_t c = ti * rc->block_entries + i;
      uint64_t want = c < nr ? counts[c] : 0;
      uint64_t v = qcow2_refblock_get (block, i, rc->order);
      if (v == want)
        continue;
      if (qcow2_refcount_update (img, c, (int64_t) want - (int64_t) v, NULL,
                                 err) == -1)
        return -1;
      (*fixed)++;
      /* The update went through the cache: look the block up again. */
      block = tablecache_get (&rc->blocks, &img->io, rc->table[ti], err);
      if (block == NULL)
        return -1;
    }
  }
  return 0;
}

/* The refcounts are durable: the dirty bit may go (qcow2.txt,
 * incompatible bit 0: "refcounts may be inconsistent" while set).
 */
static int
clear_dirty_bit (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_header *h = &img->header;
  uint64_t features = h->incompatible_features & ~QCOW2_INCOMPAT_DIRTY;

  if (tablecache_write_dirty (&img->refcounts.blocks, &img->io, err) == -1 ||
      qcx_io_sync (&img->io, err) == -1)
    return -1;
  if (qcx_io_pwrite_be64 (&img->io, features, 72, "header", err) == -1 ||
      qcx_io_sync (&img->io, err) == -1)
    return -1;
  h->incompatible_features = features;
  return 0;
}

int
qcow2_repair_dirty (struct qcow2_image *img, char *problem,
                    size_t problem_len, struct qcx_err *err)
{
  uint16_t *counts;
  uint64_t nr, fixed = 0;
  int r;

  if (qcow2_count_references (img, problem, problem_len, &counts, &nr,
                              err) == -1)
    return -1;
  if (problem[0])
    return 0;
  check_repairable (img, counts, nr, problem, problem_len);
  r = 0;
  if (problem[0] == '\0') {
    r = rewrite_refcounts (img, counts, nr, &fixed, err);
    if (r == 0)
      r = clear_dirty_bit (img, err);
    if (r == 0)
      img->refcounts_repaired = fixed;
  }
  free (counts);
  return r;
}

/* qcow2x common library: writing metadata back in a crash-safe order,
 * and flush.
 *
 * Metadata changes live in the caches (L2 tables, refcount blocks) and
 * in the list of changed L1 entries until written back here, in the
 * order design.md §4 requires:
 *
 *   1. refcount blocks (they only ever grow here: decrements wait, see
 *      4), then sync, so every cluster an L2 entry is about to
 *      reference is counted and guest data written to new clusters is
 *      on disk;
 *   2. L2 tables, then, if any new L2 table is about to be linked,
 *      sync and the L1 entries, then sync;
 *   3. only now, with no reference left on disk to the clusters being
 *      freed, and after the io barrier shows that no request in flight
 *      still uses them: apply the queued refcount decrements.
 *
 * A crash between any two steps leaves, at worst, clusters counted but
 * not referenced (leaks), never a reference to a cluster counted 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static int
write_l1_entries (struct qcow2_image *img, struct qcx_err *err)
{
  for (size_t i = 0; i < img->nr_l1_dirty; i++) {
    uint32_t index = img->l1_dirty[i];

    if (qcx_io_pwrite_be64 (&img->io, img->l1_table[index],
                            img->header.l1_table_offset + (uint64_t) index * 8,
                            "L1 table", err) == -1)
      return -1;
  }
  img->nr_l1_dirty = 0;
  return 0;
}

/* Steps 1 and 2.  Called with the metadata lock held. */
static int
metadata_writeback (struct qcow2_image *img, struct qcx_err *err)
{
  if (img->readonly)
    return 0;
  if (img->refcounts.blocks.nr_dirty > 0 &&
      tablecache_write_dirty (&img->refcounts.blocks, &img->io, err) == -1)
    return -1;
  if (img->l2_tables.nr_dirty == 0 && img->nr_l1_dirty == 0)
    return 0;
  if (qcx_io_sync (&img->io, err) == -1 ||
      tablecache_write_dirty (&img->l2_tables, &img->io, err) == -1)
    return -1;
  if (img->nr_l1_dirty > 0 &&
      (qcx_io_sync (&img->io, err) == -1 ||
       write_l1_entries (img, err) == -1))
    return -1;
  return qcx_io_sync (&img->io, err);
}

int
qcow2_metadata_make_clean (void *owner, struct tablecache *c,
                           struct qcx_err *err)
{
  (void) c;
  return metadata_writeback (owner, err);
}

/* Step 3, for the frees RANGES taken in the same locked section as the
 * write-back that made their dropped references durable (a free queued
 * after that write-back must wait for the next flush).  Called without
 * the metadata lock.
 */
static int
apply_queued_frees (struct qcow2_image *img, struct qcow2_free_range *ranges,
                    size_t nr, struct qcx_err *err)
{
  int r;

  if (nr == 0)
    return 0;
  /* Wait until every request that might have mapped these clusters
   * before their references were dropped has finished.
   */
  pthread_rwlock_wrlock (&img->io_barrier);
  pthread_rwlock_unlock (&img->io_barrier);

  pthread_mutex_lock (&img->lock);
  r = qcow2_allocator_apply_frees (img, ranges, nr, err);
  if (r == 0 && img->refcounts.blocks.nr_dirty > 0)
    r = tablecache_write_dirty (&img->refcounts.blocks, &img->io, err);
  pthread_mutex_unlock (&img->lock);
  return r;
}

int
qcow2_image_flush (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_free_range *ranges = NULL;
  size_t nr = 0;
  int r, e;

  if (img->readonly)
    return 0;
  if (qcow2_compress_candidates_flush (img, err) == -1) {
    qcow2_note_write_error (img, err);
    __atomic_store_n (&img->write_error, 0, __ATOMIC_RELEASE);
    return -1;
  }
  pthread_mutex_lock (&img->lock);
  r = metadata_writeback (img, err);
  /* Guest data written in place needs the sync even when no metadata
   * changed.
   */
  if (r == 0)
    r = qcx_io_sync (&img->io, err);
  if (r == 0)
    qcow2_allocator_take_pending (img, &ranges, &nr);
  pthread_mutex_unlock (&img->lock);
  if (r == 0)
    r = apply_queued_frees (img, ranges, nr, err);
  free (ranges);
  if (r == -1) {
    qcow2_note_write_error (img, err);
    /* Report it now; the next flush need not report it again. */
    __atomic_store_n (&img->write_error, 0, __ATOMIC_RELEASE);
    return -1;
  }
  e = __atomic_exchange_n (&img->write_error, 0, __ATOMIC_ACQ_REL);
  if (e)
    return qcx_error (err, e, "an earlier write failed since the last "
                      "flush: %s", qcx_strerror (e));
  return 0;
}

int
qcow2_image_trim_file (struct qcow2_image *img, struct qcx_err *err)
{
  int r;

  pthread_mutex_lock (&img->lock);
  r = qcow2_allocator_trim_file (img, err);
  pthread_mutex_unlock (&img->lock);
  return r;
}

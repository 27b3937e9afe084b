/* qcow2x common library: zero and trim (NBD semantics, design.md §2).
 *
 *   zero (KEEP)      the range reads as zero and keeps its host
 *                    clusters: zero bits (extended L2) or the zero flag
 *                    (v3) with the host offset kept; v2 has no zero
 *                    flag, so data is written.
 *   zero (MAY_TRIM)  reads as zero; whole clusters may be released.
 *   trim             may release; afterwards the range reads as zero if
 *                    the image has a backing file (stale backing data
 *                    must not come back), else zero or unallocated.
 *
 * The unit is the subcluster with extended L2 entries, else the
 * cluster.  Parts of units are zeroed by writing zeros, unless they
 * already read as zero.  With FAST, any need to write data fails the
 * whole request with ENOTSUP before anything changes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* What a chunk (inside one cluster) needs beyond metadata changes. */
struct zero_plan {
  /* Byte ranges to overwrite with zeros through the write path. */
  uint64_t data_off[2], data_len[2];
  unsigned nr_data;
};

static bool
reads_as_zero (enum qcow2_subcluster_type t, bool backing)
{
  switch (t) {
  case QCOW2_SC_ZERO_PLAIN:
  case QCOW2_SC_ZERO_ALLOC:
    return true;
  case QCOW2_SC_UNALLOCATED_PLAIN:
  case QCOW2_SC_UNALLOCATED_ALLOC:
    return !backing;
  default:
    return false;
  }
}

static void
plan_data (struct zero_plan *plan, uint64_t off, uint64_t len)
{
  if (len == 0)
    return;
  /* Merge with the previous range if adjacent. */
  if (plan->nr_data > 0 &&
      plan->data_off[plan->nr_data - 1] + plan->data_len[plan->nr_data - 1]
      == off) {
    plan->data_len[plan->nr_data - 1] += len;
    return;
  }
  plan->data_off[plan->nr_data] = off;
  plan->data_len[plan->nr_data] = len;
  plan->nr_data++;
}

/* A partly covered unit [off, off+len) of type T: zero it with data
 * unless it reads as zero already.
 */
static void
plan_partial (struct zero_plan *plan, enum qcow2_subcluster_type t,
              bool backing, uint64_t off, uint64_t len)
{
  if (len > 0 && !reads_as_zero (t, backing))
    plan_data (plan, off, len);
}

struct zero_ctx {
  struct qcow2_image *img;
  enum qcow2_zero_mode mode;
  bool backing;
  bool dry_run;                 /* plan only, change nothing */
};

static int
zero_extended (const struct zero_ctx *z, struct qcow2_l2_slot *slot,
               uint64_t l2_entry, uint64_t bitmap, uint64_t offset,
               uint64_t len, struct zero_plan *plan, struct qcx_err *err)
{
  struct qcow2_image *img = z->img;
  const struct qcow2_header *h = &img->header;
  uint64_t cs = h->cluster_size, scs = h->subcluster_size;
  uint64_t in = offset & (cs - 1), cluster = offset - in, end = in + len;
  uint64_t u0 = (in + scs - 1) / scs, u1 = end / scs;   /* whole ones */
  uint64_t head_end = in, tail_start;
  uint64_t alloc = bitmap & QCOW2_SC_ALLOC_MASK, zero = bitmap >> 32;
  uint64_t host = qcow2_l2_host_offset (l2_entry), mask;
  bool to_zero = z->mode != QCOW2_TRIM || z->backing;

  if (l2_entry & QCOW2_OFLAG_COMPRESSED) {
    if (len < cs) {
      plan_data (plan, offset, len);    /* rewrite the cluster */
      return 0;
    }
    if (z->dry_run)
      return 0;
    if (qcow2_l2_store (img, slot, 0, to_zero ? QCOW2_SC_ALLOC_MASK << 32 : 0,
                        err) == -1)
      return -1;
    return qcow2_free_compressed_later (img, l2_entry, err);
  }
  /* Partly covered subclusters at either end, [in, head_end) and
   * [tail_start, end); when the range lies inside one subcluster, only
   * the first.
   */
  if (in < u0 * scs) {
    head_end = u0 * scs < end ? u0 * scs : end;
    plan_partial (plan, qcow2_classify_subcluster (&img->geom, l2_entry,
                                                   bitmap, in / scs),
                  z->backing, cluster + in, head_end - in);
  }
  tail_start = u1 * scs > head_end ? u1 * scs : head_end;
  if (end > tail_start)
    plan_partial (plan, qcow2_classify_subcluster (&img->geom, l2_entry,
                                                   bitmap, tail_start / scs),
                  z->backing, cluster + tail_start, end - tail_start);
  if (z->dry_run || u0 >= u1)
    return 0;

  mask = ((1ULL << u1) - 1) & ~((1ULL << u0) - 1);
  alloc &= ~mask;
  zero = to_zero ? zero | mask : zero & ~mask;
  if (host && z->mode != QCOW2_ZERO_KEEP && alloc == 0) {
    /* No subcluster holds data any more: give the cluster back. */
    if (qcow2_allocator_free_later (img, host, 1, err) == -1)
      return -1;
    host = 0;
  }
  if (slot->l2_offset == 0) {
    /* No L2 table: everything reads as unallocated.  Only a backing
     * file makes it worth a table to say "zero".
     */
    if (!z->backing || !to_zero)
      return 0;
    if (qcow2_l2_load (img, offset, true, slot, &l2_entry, &bitmap,
                       err) == -1)
      return -1;
  }
  return qcow2_l2_store (img, slot, host ? host | QCOW2_OFLAG_COPIED : 0,
                         alloc | (zero << 32), err);
}

static int
zero_standard (const struct zero_ctx *z, struct qcow2_l2_slot *slot,
               uint64_t l2_entry, uint64_t offset, uint64_t len,
               struct zero_plan *plan, struct qcx_err *err)
{
  struct qcow2_image *img = z->img;
  enum qcow2_subcluster_type t =
    qcow2_classify_subcluster (&img->geom, l2_entry, 0, 0);
  uint64_t host = qcow2_subcluster_has_host (t)
    ? qcow2_l2_host_offset (l2_entry) : 0;
  bool v3 = img->header.version >= 3;
  uint64_t new_entry;

  if (len < img->header.cluster_size) {
    plan_partial (plan, t, z->backing, offset, len);
    return 0;
  }
  if (z->mode == QCOW2_ZERO_KEEP) {
    if (reads_as_zero (t, z->backing) && t != QCOW2_SC_UNALLOCATED_ALLOC)
      return 0;
    if (!v3) {
      plan_data (plan, offset, len);    /* no zero flag in v2 */
      return 0;
    }
    new_entry = host ? host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO
      : QCOW2_OFLAG_ZERO;
  }
  else if (!v3 && z->backing) {
    /* Releasing would expose the backing file, and v2 cannot say
     * "zero": write zeros.
     */
    if (!reads_as_zero (t, z->backing))
      plan_data (plan, offset, len);
    return 0;
  }
  else {
    new_entry = z->backing ? QCOW2_OFLAG_ZERO : 0;
    if (t == QCOW2_SC_UNALLOCATED_PLAIN && new_entry == 0)
      return 0;
  }
  if (z->dry_run)
    return 0;
  if (slot->l2_offset == 0 &&
      qcow2_l2_load (img, offset, true, slot, &l2_entry, &l2_entry,
                     err) == -1)
    return -1;
  if (qcow2_l2_store (img, slot, new_entry, 0, err) == -1)
    return -1;
  if (t == QCOW2_SC_COMPRESSED)
    return qcow2_free_compressed_later (img, l2_entry, err);
  if (host && !(new_entry & QCOW2_L2E_OFFSET_MASK))
    return qcow2_allocator_free_later (img, host, 1, err);
  return 0;
}

/* Decide (and unless dry-running, apply) the metadata part of zeroing
 * [offset, offset+len) inside one cluster; PLAN gets the data part.
 */
static int
zero_in_cluster (const struct zero_ctx *z, uint64_t offset, uint64_t len,
                 struct zero_plan *plan, struct qcx_err *err)
{
  struct qcow2_image *img = z->img;
  struct qcow2_l2_slot slot;
  uint64_t l2_entry, bitmap;
  int r;

  memset (plan, 0, sizeof *plan);
  pthread_mutex_lock (&img->lock);
  qcow2_wait_not_busy (img, offset);
  r = qcow2_l2_load (img, offset, false, &slot, &l2_entry, &bitmap, err);
  if (r == 0 && img->header.extended_l2)
    r = zero_extended (z, &slot, l2_entry, bitmap, offset, len, plan, err);
  else if (r == 0)
    r = zero_standard (z, &slot, l2_entry, offset, len, plan, err);
  pthread_mutex_unlock (&img->lock);
  return r;
}

static int
write_zeroes (struct qcow2_image *img, const struct zero_plan *plan,
              struct qcx_err *err)
{
  for (unsigned i = 0; i < plan->nr_data; i++) {
    uint8_t *zeroes = calloc (1, plan->data_len[i]);
    int r;
    if (zeroes == NULL)
      return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
    r = qcow2_write_in_cluster (img, zeroes, plan->data_off[i],
                                plan->data_len[i], err);
    free (zeroes);
    if (r == -1)
      return -1;
  }
  return 0;
}

/* Run zero_in_cluster over every cluster of the range. */
static int
zero_range (const struct zero_ctx *z, uint64_t count, uint64_t offset,
            bool *needs_data, struct qcx_err *err)
{
  uint64_t cs = z->img->header.cluster_size;

  *needs_data = false;
  while (count > 0) {
    struct zero_plan plan;
    uint64_t n = cs - (offset & (cs - 1));
    if (n > count)
      n = count;
    if (zero_in_cluster (z, offset, n, &plan, err) == -1)
      return -1;
    if (plan.nr_data > 0)
      *needs_data = true;
    if (!z->dry_run && write_zeroes (z->img, &plan, err) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  return 0;
}

/* Freed clusters wait in a queue until a flush; keep it bounded. */
#define MAX_QUEUED_FREES 4096

int
qcow2_image_zero (struct qcow2_image *img, uint64_t count, uint64_t offset,
                  enum qcow2_zero_mode mode, unsigned flags,
                  struct qcx_err *err)
{
  struct zero_ctx z = { img, mode, qcow2_image_has_backing (img), false };
  bool needs_data, flush;
  int r;

  if (offset > img->header.size || count > img->header.size - offset)
    return qcx_error (err, ENOSPC, "zero beyond the end of the disk");
  if (qcow2_prepare_for_write (img, err) == -1) {
    if (!img->readonly)
      qcow2_note_write_error (img, err);
    return -1;
  }
  pthread_rwlock_rdlock (&img->io_barrier);
  if (flags & QCOW2_ZERO_FAST) {
    z.dry_run = true;
    r = zero_range (&z, count, offset, &needs_data, err);
    if (r == 0 && needs_data)
      r = qcx_error (err, ENOTSUP, "fast zero: this range can only be "
                     "zeroed by writing data");
    z.dry_run = false;
  }
  else
    r = 0;
  if (r == 0)
    r = zero_range (&z, count, offset, &needs_data, err);
  pthread_rwlock_unlock (&img->io_barrier);
  if (r == -1) {
    /* A fast zero refused before any change is not a write error. */
    if (!((flags & QCOW2_ZERO_FAST) && err->errnum == ENOTSUP))
      qcow2_note_write_error (img, err);
    return -1;
  }
  pthread_mutex_lock (&img->lock);
  flush = img->alloc.pending_clusters > MAX_QUEUED_FREES;
  pthread_mutex_unlock (&img->lock);
  if (flush || (flags & QCOW2_WRITE_FUA)) {
    r = qcow2_image_flush (img, err);
    /* Without FUA the client did not ask for that flush: its failure
     * must still reach the client's next flush.
     */
    if (r == -1 && !(flags & QCOW2_WRITE_FUA))
      qcow2_note_write_error (img, err);
    return r;
  }
  return 0;
}

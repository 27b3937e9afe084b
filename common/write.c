/* qcow2x common library: guest writes (design.md §2, issue "write
 * qcow2 that QEMU accepts").
 *
 * A request is split at guest cluster boundaries.  Per cluster:
 *   - every touched subcluster already holds data of its own: write in
 *     place;
 *   - otherwise allocate: the unit is the subcluster with extended L2
 *     entries (only touched subclusters get the allocated bit; the
 *     others keep their state) and the cluster without; bytes of a
 *     newly allocated unit that the request does not cover are zeroed;
 *   - a compressed cluster is decompressed, merged and rewritten to a
 *     new cluster, and its old sectors are released;
 *   - with compress_writes, clusters may be stored compressed
 *     (compress_write.c).
 *
 * Allocation is planned under the metadata lock (host cluster counted,
 * L2 table present), the data is written outside it, and the L2 entry
 * that exposes the data changes last, under the lock again.  While a
 * guest cluster is between plan and commit it is "busy": other writes,
 * zeroes and trims of it wait, so no two requests allocate the same
 * guest cluster and no entry changes under a request's feet.  Reads do
 * not wait: until the commit they see the old state.  Bytes already
 * holding data are never read back and rewritten, so a concurrent
 * in-place write to the same cluster cannot be lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bitmaps.h"
#include "image.h"

/* Allocated bits of subclusters FIRST..LAST (qcow2.txt "Extended L2
 * Entries": bit x is subcluster x).
 */
static uint64_t
subcluster_mask (unsigned first, unsigned last)
{
  return ((1ULL << (last + 1)) - 1) & ~((1ULL << first) - 1);
}

/* Release the host clusters the compressed data of L2_ENTRY occupies.
 * A compressed cluster is counted once in every host cluster its
 * sectors touch ("Compressed Clusters Descriptor"), as QEMU counts it.
 */
int
qcow2_free_compressed_later (struct qcow2_image *img, uint64_t l2_entry,
                             struct qcx_err *err)
{
  struct qcow2_compressed_desc d;
  uint64_t start, end, cb = img->header.cluster_bits;

  qcow2_decode_compressed (&img->geom, l2_entry, &d);
  start = d.host_offset & ~511ULL;
  end = d.host_offset + d.max_bytes;
  return qcow2_allocator_free_later (img, (start >> cb) << cb,
                                     ((end - 1) >> cb) - (start >> cb) + 1,
                                     err);
}

/* Busy guest clusters (see the top of this file).  Lock held. */

static bool
is_busy (const struct qcow2_image *img, uint64_t guest_cluster)
{
  for (size_t i = 0; i < img->nr_busy; i++)
    if (img->busy[i] == guest_cluster)
      return true;
  return false;
}

void
qcow2_wait_not_busy (struct qcow2_image *img, uint64_t offset)
{
  uint64_t gc = offset >> img->header.cluster_bits;

  while (is_busy (img, gc))
    pthread_cond_wait (&img->busy_cond, &img->lock);
}

int
qcow2_mark_busy (struct qcow2_image *img, uint64_t gc, struct qcx_err *err)
{
  if (img->nr_busy == img->busy_cap) {
    size_t cap = img->busy_cap ? img->busy_cap * 2 : 16;
    uint64_t *p = realloc (img->busy, cap * sizeof *p);
    if (p == NULL)
      return qcx_error (err, errno, "realloc: %s", qcx_strerror (errno));
    img->busy = p;
    img->busy_cap = cap;
  }
  img->busy[img->nr_busy++] = gc;
  return 0;
}

void
qcow2_unmark_busy (struct qcow2_image *img, uint64_t gc)
{
  for (size_t i = 0; i < img->nr_busy; i++)
    if (img->busy[i] == gc) {
      img->busy[i] = img->busy[--img->nr_busy];
      break;
    }
  pthread_cond_broadcast (&img->busy_cond);
}

/* An allocating write of one guest cluster, between plan and commit. */
struct alloc_write {
  uint64_t offset;              /* guest offset of the request */
  uint64_t in, len;             /* request within the cluster */
  uint64_t old_entry, old_bitmap;
  uint64_t host;                /* host cluster to write to */
  bool new_host;                /* host was allocated for this write */
  bool fresh;                   /* ... and known to read as zeros */
  uint64_t new_entry, new_bitmap;
  /* Byte ranges of the cluster to zero around the request. */
  uint64_t zero_lo[2], zero_hi[2];
};

static void
plan_padding (struct alloc_write *w, unsigned i, uint64_t lo, uint64_t hi)
{
  w->zero_lo[i] = lo;
  w->zero_hi[i] = w->fresh ? lo : hi;
}

/* Decide how to allocate (metadata lock held). */
static int
plan_alloc_write (struct qcow2_image *img, struct alloc_write *w,
                  struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint64_t cs = h->cluster_size;
  bool compressed = w->old_entry & QCOW2_OFLAG_COMPRESSED;

  w->host = 0;
  if (!compressed) {
    enum qcow2_subcluster_type t =
      qcow2_classify_subcluster (&img->geom, w->old_entry, 0, 0);
    /* Extended L2: the cluster's host cluster, if it has one.  Standard:
     * a zero cluster that kept its host cluster is reused.
     */
    if (h->extended_l2 || t == QCOW2_SC_ZERO_ALLOC)
      w->host = qcow2_l2_host_offset (w->old_entry);
  }
  w->new_host = w->host == 0;
  w->fresh = false;
  if (w->new_host &&
      qcow2_alloc_clusters (img, 1, &w->host, &w->fresh, err) == -1)
    return -1;
  w->new_entry = w->host | QCOW2_OFLAG_COPIED;
  w->new_bitmap = 0;
  plan_padding (w, 0, 0, 0);
  plan_padding (w, 1, 0, 0);

  if (compressed) {
    /* The whole cluster is rewritten from the decompressed data. */
    if (h->extended_l2)
      w->new_bitmap = QCOW2_SC_ALLOC_MASK;
  }
  else if (!h->extended_l2) {
    plan_padding (w, 0, 0, w->in);
    plan_padding (w, 1, w->in + w->len, cs);
  }
  else {
    unsigned first = w->in >> h->subcluster_bits;
    unsigned last = (w->in + w->len - 1) >> h->subcluster_bits;
    uint64_t mask = subcluster_mask (first, last);
    uint64_t alloc = (w->old_bitmap & QCOW2_SC_ALLOC_MASK) | mask;
    uint64_t zero = (w->old_bitmap >> 32) & ~mask;

    /* Only the end subclusters can be partly covered; one that already
     * has data keeps it.
     */
    if (qcow2_classify_subcluster (&img->geom, w->old_entry, w->old_bitmap,
                                   first) != QCOW2_SC_NORMAL)
      plan_padding (w, 0, (uint64_t) first << h->subcluster_bits, w->in);
    if (qcow2_classify_subcluster (&img->geom, w->old_entry, w->old_bitmap,
                                   last) != QCOW2_SC_NORMAL)
      plan_padding (w, 1, w->in + w->len,
                    (uint64_t) (last + 1) << h->subcluster_bits);
    w->new_bitmap = alloc | (zero << 32);
  }
  return 0;
}

/* The data part (no lock held). */
static int
do_alloc_write (struct qcow2_image *img, const struct alloc_write *w,
                const uint8_t *buf, struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;

  if (w->old_entry & QCOW2_OFLAG_COMPRESSED) {
    struct qcow2_compressed_desc d;
    uint8_t *cluster;

    qcow2_decode_compressed (&img->geom, w->old_entry, &d);
    if (qcow2_decompress_cluster (img, &d, &cluster, err) == -1)
      return -1;
    memcpy (cluster + w->in, buf, w->len);
    return qcx_io_pwrite (&img->io, cluster, cs, w->host, "data cluster",
                          err);
  }
  if (qcx_io_pwrite (&img->io, buf, w->len, w->host + w->in, "data cluster",
                     err) == -1)
    return -1;
  for (unsigned i = 0; i < 2; i++)
    if (w->zero_hi[i] > w->zero_lo[i] &&
        qcx_io_pwrite_zeroes (&img->io, w->zero_hi[i] - w->zero_lo[i],
                              w->host + w->zero_lo[i], "data cluster",
                              err) == -1)
      return -1;
  return 0;
}

/* Expose the data (lock held). */
static int
commit_alloc_write (struct qcow2_image *img, const struct alloc_write *w,
                    struct qcx_err *err)
{
  struct qcow2_l2_slot slot;
  uint64_t e, b;

  if (qcow2_l2_load (img, w->offset, true, &slot, &e, &b, err) == -1 ||
      qcow2_l2_store (img, &slot, w->new_entry, w->new_bitmap, err) == -1)
    return -1;
  if (w->old_entry & QCOW2_OFLAG_COMPRESSED)
    return qcow2_free_compressed_later (img, w->old_entry, err);
  return 0;
}

/* True if every subcluster the range touches already has its own data
 * (so the write goes in place).  Sets *invalid for a corrupt entry.
 */
static bool
all_normal (const struct qcow2_image *img, uint64_t l2_entry, uint64_t bitmap,
            uint64_t in, uint64_t len, bool *invalid)
{
  unsigned first = in >> img->header.subcluster_bits;
  unsigned last = (in + len - 1) >> img->header.subcluster_bits;
  bool normal = true;

  *invalid = false;
  for (unsigned sc = first; sc <= last; sc++) {
    enum qcow2_subcluster_type t =
      qcow2_classify_subcluster (&img->geom, l2_entry, bitmap, sc);
    if (t == QCOW2_SC_INVALID)
      *invalid = true;
    if (t != QCOW2_SC_NORMAL)
      normal = false;
  }
  return normal;
}

/* Write [offset, offset + len), which lies inside one guest cluster. */
int
qcow2_write_in_cluster (struct qcow2_image *img, const uint8_t *buf,
                        uint64_t offset, uint64_t len, struct qcx_err *err)
{
  uint64_t gc = offset >> img->header.cluster_bits;
  struct alloc_write w = {
    .offset = offset, .in = offset & (img->header.cluster_size - 1),
    .len = len,
  };
  struct qcow2_l2_slot slot;
  bool invalid, done, candidate = false;
  int r;

  if (img->compress_writes) {
    if (qcow2_write_compressed (img, buf, offset, len, &done, &candidate,
                                err) == -1)
      return -1;
    if (done)
      return 0;
  }
  pthread_mutex_lock (&img->lock);
  qcow2_wait_not_busy (img, offset);
  r = qcow2_l2_load (img, offset, false, &slot, &w.old_entry, &w.old_bitmap,
                     err);
  if (r == 0 &&
      all_normal (img, w.old_entry, w.old_bitmap, w.in, len, &invalid)) {
    uint64_t host = qcow2_l2_host_offset (w.old_entry) + w.in;
    if (!img->compress_writes) {
      pthread_mutex_unlock (&img->lock);
      /* In place; the io barrier keeps the cluster from being reused
       * under us.
       */
      return qcx_io_pwrite (&img->io, buf, len, host, "data cluster", err);
    }
    /* With compress_writes the cluster may be about to be compressed
     * (compress_write.c): write in place as its owner.
     */
    r = qcow2_mark_busy (img, gc, err);
    pthread_mutex_unlock (&img->lock);
    if (r == 0)
      r = qcx_io_pwrite (&img->io, buf, len, host, "data cluster", err);
    pthread_mutex_lock (&img->lock);
    qcow2_unmark_busy (img, gc);
    pthread_mutex_unlock (&img->lock);
    return r;
  }
  if (r == 0 && invalid)
    r = qcx_error (err, EIO, "invalid L2 entry 0x%016" PRIx64 " for guest "
                   "offset 0x%" PRIx64, w.old_entry, offset);
  if (r == 0)
    r = plan_alloc_write (img, &w, err);
  if (r == 0)
    r = qcow2_mark_busy (img, gc, err);
  pthread_mutex_unlock (&img->lock);
  if (r == -1)
    return -1;

  r = do_alloc_write (img, &w, buf, err);

  pthread_mutex_lock (&img->lock);
  if (r == 0) {
    r = commit_alloc_write (img, &w, err);
    if (r == 0 && candidate && w.new_host)
      r = qcow2_compress_candidate_add (img, gc, w.host, err);
  }
  else if (w.new_host) {
    /* Never exposed: give the cluster back (the error stays). */
    struct qcx_err ignored;
    qcow2_allocator_free_later (img, w.host, 1, &ignored);
  }
  qcow2_unmark_busy (img, gc);
  pthread_mutex_unlock (&img->lock);
  if (r == 0 && candidate)
    r = qcow2_compress_candidates_trim (img, err);
  return r;
}

/* Before the first write (qcow2.txt "autoclear_features"): bits we do
 * not maintain must be cleared; the bitmaps bit stays, with every
 * bitmap marked in use (bitmaps.h), if the extension is really there.
 */
static int
prepare_header (struct qcow2_image *img, struct qcx_err *err)
{
  struct qcow2_header *h = &img->header;
  uint64_t keep = 0;

  if (h->has_bitmaps_ext && (h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
    if (qcow2_bitmaps_mark_in_use (img, err) == -1)
      return -1;
    keep = QCOW2_AUTOCLEAR_BITMAPS;
  }
  if ((h->autoclear_features & ~keep) != 0) {
    if (qcx_io_pwrite_be64 (&img->io, h->autoclear_features & keep, 88,
                            "header", err) == -1)
      return -1;
    h->autoclear_features &= keep;
  }
  return qcx_io_sync (&img->io, err);
}

int
qcow2_prepare_for_write (struct qcow2_image *img, struct qcx_err *err)
{
  int r = 0;

  if (!img->writable_checked && qcow2_image_prepare_writable (img, NULL, err) == -1)
    return -1;
  if (img->readonly)
    return qcx_error (err, EROFS, "the image is read-only%s%s",
                      img->readonly_reason ? ": " : "",
                      img->readonly_reason ? img->readonly_reason : "");
  pthread_mutex_lock (&img->lock);
  if (!img->header_prepared) {
    r = prepare_header (img, err);
    if (r == 0)
      img->header_prepared = true;
  }
  pthread_mutex_unlock (&img->lock);
  return r;
}

void
qcow2_note_write_error (struct qcow2_image *img, const struct qcx_err *err)
{
  int expected = 0;

  __atomic_compare_exchange_n (&img->write_error, &expected,
                               err->errnum ? err->errnum : EIO, false,
                               __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int
qcow2_image_write (struct qcow2_image *img, const void *buf, uint64_t count,
                   uint64_t offset, unsigned flags, struct qcx_err *err)
{
  const uint8_t *p = buf;
  uint64_t cs = img->header.cluster_size;
  int r = 0;

  if (offset > img->header.size || count > img->header.size - offset)
    return qcx_error (err, ENOSPC, "write beyond the end of the disk");
  if (qcow2_prepare_for_write (img, err) == -1) {
    if (!img->readonly)
      qcow2_note_write_error (img, err);
    return -1;
  }
  pthread_rwlock_rdlock (&img->io_barrier);
  while (count > 0 && r == 0) {
    uint64_t n = cs - (offset & (cs - 1));
    if (n > count)
      n = count;
    r = qcow2_write_in_cluster (img, p, offset, n, err);
    p += n;
    offset += n;
    count -= n;
  }
  pthread_rwlock_unlock (&img->io_barrier);
  if (r == -1) {
    qcow2_note_write_error (img, err);
    return -1;
  }
  if (flags & QCOW2_WRITE_FUA)
    r = qcow2_image_flush (img, err);
  return r;
}

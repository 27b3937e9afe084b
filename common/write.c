/* qcow2x common library: guest writes (design.md §2, issue "write
 * qcow2 that QEMU accepts").
 *
 * A request is split at guest cluster boundaries.  Per cluster:
 *   - every touched subcluster already holds data of its own: write in
 *     place, outside the metadata lock;
 *   - otherwise allocate: the unit is the subcluster with extended L2
 *     entries (only touched subclusters get the allocated bit; the
 *     others keep their state) and the cluster without; bytes of a unit
 *     the request does not cover are zero (or kept, for a unit that
 *     already had data);
 *   - a compressed cluster is decompressed, merged and rewritten to a
 *     new cluster, and its old sectors are released.
 * New clusters are counted before data is written and the L2 entry
 * that exposes them changes last; see flush.c for when each reaches
 * the disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
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

/* Write a whole new cluster's worth of guest data: BUF covers
 * [in, in + len) of the cluster, the rest is FILL (or zero if NULL).
 */
static int
write_cluster_image (struct qcow2_image *img, uint64_t host,
                     const uint8_t *fill, const uint8_t *buf, uint64_t in,
                     uint64_t len, struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;
  uint8_t *tmp;
  int r;

  if (in == 0 && len == cs)
    return qcx_io_pwrite (&img->io, buf, len, host, "data cluster", err);
  tmp = malloc (cs);
  if (tmp == NULL)
    return qcx_error (err, errno, "malloc: %s", strerror (errno));
  if (fill)
    memcpy (tmp, fill, cs);
  else
    memset (tmp, 0, cs);
  memcpy (tmp + in, buf, len);
  r = qcx_io_pwrite (&img->io, tmp, cs, host, "data cluster", err);
  free (tmp);
  return r;
}

static int
rewrite_compressed (struct qcow2_image *img, const struct qcow2_l2_slot *slot,
                    uint64_t l2_entry, const uint8_t *buf, uint64_t in,
                    uint64_t len, struct qcx_err *err)
{
  struct qcow2_compressed_desc d;
  uint8_t *old;
  uint64_t host;

  qcow2_decode_compressed (&img->geom, l2_entry, &d);
  if (qcow2_decompress_cluster (img, &d, &old, err) == -1 ||
      qcow2_alloc_clusters (img, 1, &host, err) == -1 ||
      write_cluster_image (img, host, old, buf, in, len, err) == -1 ||
      qcow2_l2_store (img, slot, host | QCOW2_OFLAG_COPIED,
                      img->header.extended_l2 ? QCOW2_SC_ALLOC_MASK : 0,
                      err) == -1)
    return -1;
  return qcow2_free_compressed_later (img, l2_entry, err);
}

static int
write_standard (struct qcow2_image *img, const struct qcow2_l2_slot *slot,
                uint64_t l2_entry, const uint8_t *buf, uint64_t in,
                uint64_t len, struct qcx_err *err)
{
  enum qcow2_subcluster_type t =
    qcow2_classify_subcluster (&img->geom, l2_entry, 0, 0);
  uint64_t host = 0;

  /* A zero cluster that kept its host cluster is reused for the data. */
  if (t == QCOW2_SC_ZERO_ALLOC)
    host = qcow2_l2_host_offset (l2_entry);
  else if (qcow2_alloc_clusters (img, 1, &host, err) == -1)
    return -1;
  if (write_cluster_image (img, host, NULL, buf, in, len, err) == -1)
    return -1;
  return qcow2_l2_store (img, slot, host | QCOW2_OFLAG_COPIED, 0, err);
}

/* Fill the partly covered subcluster SC of the unit buffer TMP (which
 * starts at subcluster FIRST): keep its data if it has some, else zero.
 */
static int
fill_partial_subcluster (struct qcow2_image *img, uint64_t l2_entry,
                         uint64_t bitmap, unsigned sc, unsigned first,
                         uint8_t *tmp, uint64_t host, struct qcx_err *err)
{
  uint64_t scs = img->header.subcluster_size;
  uint8_t *p = tmp + (uint64_t) (sc - first) * scs;

  if (qcow2_classify_subcluster (&img->geom, l2_entry, bitmap, sc) ==
      QCOW2_SC_NORMAL)
    return qcx_io_pread (&img->io, p, scs, host + sc * scs, "data cluster",
                         err);
  memset (p, 0, scs);
  return 0;
}

static int
write_extended (struct qcow2_image *img, const struct qcow2_l2_slot *slot,
                uint64_t l2_entry, uint64_t bitmap, const uint8_t *buf,
                uint64_t in, uint64_t len, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  unsigned first = in >> h->subcluster_bits;
  unsigned last = (in + len - 1) >> h->subcluster_bits;
  uint64_t lo = (uint64_t) first << h->subcluster_bits;
  uint64_t hi = (uint64_t) (last + 1) << h->subcluster_bits;
  uint64_t host = qcow2_l2_host_offset (l2_entry);
  uint64_t mask = subcluster_mask (first, last);
  uint64_t alloc, zero;
  int r;

  if (host == 0 && qcow2_alloc_clusters (img, 1, &host, err) == -1)
    return -1;
  if (lo == in && hi == in + len)
    r = qcx_io_pwrite (&img->io, buf, len, host + in, "data cluster", err);
  else {
    uint8_t *tmp = malloc (hi - lo);
    if (tmp == NULL)
      return qcx_error (err, errno, "malloc: %s", strerror (errno));
    r = fill_partial_subcluster (img, l2_entry, bitmap, first, first, tmp,
                                 host, err);
    if (r == 0 && last != first)
      r = fill_partial_subcluster (img, l2_entry, bitmap, last, first, tmp,
                                   host, err);
    if (r == 0) {
      memcpy (tmp + (in - lo), buf, len);
      r = qcx_io_pwrite (&img->io, tmp, hi - lo, host + lo, "data cluster",
                         err);
    }
    free (tmp);
  }
  if (r == -1)
    return -1;
  alloc = (bitmap & QCOW2_SC_ALLOC_MASK) | mask;
  zero = (bitmap >> 32) & ~mask;
  return qcow2_l2_store (img, slot, host | QCOW2_OFLAG_COPIED,
                         alloc | (zero << 32), err);
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
  uint64_t in = offset & (img->header.cluster_size - 1);
  struct qcow2_l2_slot slot;
  uint64_t l2_entry, bitmap, host;
  bool invalid;
  int r;

  pthread_mutex_lock (&img->lock);
  r = qcow2_l2_load (img, offset, false, &slot, &l2_entry, &bitmap, err);
  if (r == 0 && all_normal (img, l2_entry, bitmap, in, len, &invalid)) {
    host = qcow2_l2_host_offset (l2_entry) + in;
    pthread_mutex_unlock (&img->lock);
    /* In place, outside the lock; the io barrier keeps the cluster
     * from being reused under us.
     */
    return qcx_io_pwrite (&img->io, buf, len, host, "data cluster", err);
  }
  if (r == 0 && invalid)
    r = qcx_error (err, EIO, "invalid L2 entry 0x%016" PRIx64 " for guest "
                   "offset 0x%" PRIx64, l2_entry, offset);
  if (r == 0 && slot.l2_offset == 0)
    r = qcow2_l2_load (img, offset, true, &slot, &l2_entry, &bitmap, err);
  if (r == 0) {
    if (l2_entry & QCOW2_OFLAG_COMPRESSED)
      r = rewrite_compressed (img, &slot, l2_entry, buf, in, len, err);
    else if (img->header.extended_l2)
      r = write_extended (img, &slot, l2_entry, bitmap, buf, in, len, err);
    else
      r = write_standard (img, &slot, l2_entry, buf, in, len, err);
  }
  pthread_mutex_unlock (&img->lock);
  return r;
}

/* Before the first write: unknown autoclear bits must be cleared
 * (qcow2.txt "autoclear_features"), and so must the bitmaps bit, as we
 * do not keep persistent bitmaps up to date.
 */
int
qcow2_prepare_for_write (struct qcow2_image *img, struct qcx_err *err)
{
  int r = 0;

  if (img->readonly)
    return qcx_error (err, EROFS, "the image is read-only%s%s",
                      img->readonly_reason ? ": " : "",
                      img->readonly_reason ? img->readonly_reason : "");
  pthread_mutex_lock (&img->lock);
  if (!img->header_prepared && img->header.autoclear_features != 0) {
    uint8_t be[8] = { 0 };
    r = qcx_io_pwrite (&img->io, be, 8, 88, "header", err);
    if (r == 0)
      r = qcx_io_sync (&img->io, err);
    if (r == 0)
      img->header.autoclear_features = 0;
  }
  if (r == 0)
    img->header_prepared = true;
  pthread_mutex_unlock (&img->lock);
  return r;
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
  if (qcow2_prepare_for_write (img, err) == -1)
    return -1;
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
  if (r == 0 && (flags & QCOW2_WRITE_FUA))
    r = qcow2_image_flush (img, err);
  return r;
}

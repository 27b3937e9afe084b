/* qcow2x common library: storing guest writes compressed
 * (compress_writes, the plugin's compress=true; issue "faster than
 * qemu-nbd", optional part).
 *
 * Whole clusters.  A write of a whole guest cluster (up to the end of
 * the disk for the last one) that has no host cluster of its own, or
 * whose data is compressed already, is stored compressed as `qemu-img
 * convert -c` stores it: compressed outside the lock (so in parallel,
 * one codec context per thread), packed byte-wise into host clusters
 * shared with other compressed clusters (allocator.h), and exposed by a
 * compressed descriptor (qcow2.txt "Compressed Clusters Descriptor":
 * no COPIED flag; with extended L2 entries the bitmap is reserved, 0).
 * A write into a compressed cluster decompresses it, applies the write
 * and compresses the result.
 *
 * Clusters written in pieces.  nbdcopy sends a cluster as several
 * requests when it is bigger than nbdcopy's request size or has zero
 * blocks inside (data pieces and zero requests, in any order).
 * Compressing after every piece would cost a compression per piece and
 * leave every older version's bytes behind until the next flush, so a
 * piece that lands in a cluster without data is written normally and
 * the cluster becomes a "candidate": the candidates are compressed from
 * their host cluster, oldest first, once more than a bounded number
 * are waiting (a sequential writer has completed them by then) and all
 * of them at every flush.  A candidate whose cluster changed since
 * (another host cluster, data from a backing file) is dropped.
 *
 * Data that does not compress below one cluster stays uncompressed.
 *
 * Locking (image.h): decisions and metadata under the metadata lock;
 * the guest cluster is "busy" (write.c) from the decision to the L2
 * update, and with compress_writes in-place writes take it busy too,
 * so no write can land in a host cluster while it is being compressed
 * away.  Callers hold the io barrier for reading.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* Candidates waiting: about 32 MiB of clusters, at least 8. */
static size_t
max_candidates (const struct qcow2_image *img)
{
  size_t n = (32u << 20) >> img->header.cluster_bits;

  return n < 8 ? 8 : n;
}

static bool
whole_cluster (const struct qcow2_image *img, uint64_t offset, uint64_t len)
{
  uint64_t cs = img->header.cluster_size;

  return (offset & (cs - 1)) == 0 &&
    (len == cs || offset + len == img->header.size);
}

/* Does subcluster type T read as zero without a host cluster? */
static bool
zero_without_host (const struct qcow2_image *img,
                   enum qcow2_subcluster_type t)
{
  return t == QCOW2_SC_ZERO_PLAIN ||
    (t == QCOW2_SC_UNALLOCATED_PLAIN && !img->has_backing);
}

/* Lock held: has the cluster no host cluster and no content from a
 * backing file (every subcluster reads as zero; with WHOLE, unallocated
 * ones may defer to a backing file: the write replaces them)?
 */
static bool
no_host_cluster (const struct qcow2_image *img, uint64_t l2_entry,
                 uint64_t bitmap, bool whole)
{
  for (unsigned sc = 0; sc < img->header.subclusters; sc++) {
    enum qcow2_subcluster_type t =
      qcow2_classify_subcluster (&img->geom, l2_entry, bitmap, sc);
    if (!zero_without_host (img, t) &&
        !(whole && t == QCOW2_SC_UNALLOCATED_PLAIN))
      return false;
  }
  return true;
}

/* Compress the cluster CLUSTER (cluster_size bytes) into this thread's
 * scratch buffer *OUT; *CLEN 0 if it does not compress below a cluster.
 */
static int
compress_cluster (struct qcow2_image *img, struct qcx_codec *codec,
                  const uint8_t *cluster, const uint8_t **out, size_t *clen,
                  struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;

  *out = qcx_codec_inbuf (codec);
  return qcx_compress (codec, img->header.compression_type,
                       img->compress_level, cluster, cs,
                       qcx_codec_inbuf (codec), cs - 1, clen, err);
}

/* Store CDATA (CLEN bytes) as guest cluster GC's compressed data and
 * release what the cluster held before (compressed bytes or a normal
 * host cluster).  GC is busy and owned by the caller; called without
 * the lock.
 */
static int
store_compressed (struct qcow2_image *img, uint64_t gc, const uint8_t *cdata,
                  size_t clen, struct qcx_err *err)
{
  uint64_t offset = gc << img->header.cluster_bits;
  uint64_t host, entry = 0, old_entry, old_bitmap;
  struct qcow2_l2_slot slot;
  int r;

  pthread_mutex_lock (&img->lock);
  r = qcow2_alloc_compressed_bytes (img, clen, &host, err);
  pthread_mutex_unlock (&img->lock);
  if (r == -1)
    return -1;
  entry = qcow2_encode_compressed (&img->geom, host, clen);
  r = qcx_io_pwrite (&img->io, cdata, clen, host, "compressed cluster", err);

  pthread_mutex_lock (&img->lock);
  if (r == 0)
    r = qcow2_l2_load (img, offset, true, &slot, &old_entry, &old_bitmap,
                       err);
  if (r == 0)
    r = qcow2_l2_store (img, &slot, entry, 0, err);
  else {
    /* Never exposed: drop its references (the error stays). */
    struct qcx_err ignored;
    qcow2_free_compressed_later (img, entry, &ignored);
  }
  if (r == 0 && (old_entry & QCOW2_OFLAG_COMPRESSED))
    r = qcow2_free_compressed_later (img, old_entry, err);
  else if (r == 0 && qcow2_l2_host_offset (old_entry) != 0)
    r = qcow2_allocator_free_later (img, qcow2_l2_host_offset (old_entry), 1,
                                    err);
  pthread_mutex_unlock (&img->lock);
  return r;
}

int
qcow2_write_compressed (struct qcow2_image *img, const uint8_t *buf,
                        uint64_t offset, uint64_t len, bool *done,
                        bool *candidate, struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;
  uint64_t gc = offset >> img->header.cluster_bits, in = offset & (cs - 1);
  bool whole = whole_cluster (img, offset, len), compressed;
  uint64_t old_entry, old_bitmap;
  struct qcow2_l2_slot slot;
  struct qcx_codec *codec;
  const uint8_t *src = buf, *cdata;
  size_t clen = 0;
  int r;

  *done = *candidate = false;
  pthread_mutex_lock (&img->lock);
  qcow2_wait_not_busy (img, offset);
  r = qcow2_l2_load (img, offset, false, &slot, &old_entry, &old_bitmap, err);
  compressed = old_entry & QCOW2_OFLAG_COMPRESSED;
  if (r == 0 && !compressed &&
      !no_host_cluster (img, old_entry, old_bitmap, whole)) {
    pthread_mutex_unlock (&img->lock);
    return 0;
  }
  if (r == 0 && !whole && !compressed) {
    /* A first piece: written normally, compressed later. */
    pthread_mutex_unlock (&img->lock);
    *candidate = true;
    return 0;
  }
  if (r == 0)
    r = qcow2_mark_busy (img, gc, err);
  pthread_mutex_unlock (&img->lock);
  if (r == -1)
    return -1;

  codec = qcx_codec_get (&img->codecs, err);
  r = codec ? 0 : -1;
  if (r == 0 && (!whole || len < cs)) {
    uint8_t *cluster = qcx_codec_outbuf (codec);
    if (!whole) {
      struct qcow2_compressed_desc d;
      qcow2_decode_compressed (&img->geom, old_entry, &d);
      r = qcow2_decompress_cluster_to (img, &d, cluster, NULL, err);
    }
    else
      memset (cluster, 0, cs);  /* past the end of the disk */
    memcpy (cluster + in, buf, len);
    src = cluster;
  }
  if (r == 0)
    r = compress_cluster (img, codec, src, &cdata, &clen, err);
  if (r == 0 && clen > 0) {
    r = store_compressed (img, gc, cdata, clen, err);
    *done = r == 0;
  }

  pthread_mutex_lock (&img->lock);
  qcow2_unmark_busy (img, gc);
  pthread_mutex_unlock (&img->lock);
  return r;
}

/* Candidates (see the top of this file). */

int
qcow2_compress_candidate_add (struct qcow2_image *img, uint64_t gc,
                              uint64_t host, struct qcx_err *err)
{
  struct qcow2_compress_candidates *c = &img->candidates;

  if (c->nr == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    struct qcow2_compress_candidate *p = realloc (c->list, cap * sizeof *p);
    if (p == NULL)
      return qcx_error (err, errno, "realloc: %s", qcx_strerror (errno));
    c->list = p;
    c->cap = cap;
  }
  c->list[c->nr++] = (struct qcow2_compress_candidate) { gc, host };
  return 0;
}

/* Lock held: is guest cluster GC still the normal cluster at HOST that
 * became a candidate, with data in it and nothing from a backing file?
 * (A cluster zeroed since keeps its zero state.)  1 yes, 0 no, -1 if
 * its L2 table cannot be read (the error goes to the flush).
 * *L2_ENTRY, *BITMAP: its entry, valid while the cluster is busy.
 */
static int
still_candidate (struct qcow2_image *img, uint64_t gc, uint64_t host,
                 uint64_t *l2_entry, uint64_t *bitmap, struct qcx_err *err)
{
  struct qcow2_l2_slot slot;
  bool data = false;

  if (qcow2_l2_load (img, gc << img->header.cluster_bits, false, &slot,
                     l2_entry, bitmap, err) == -1)
    return -1;
  if ((*l2_entry & QCOW2_OFLAG_COMPRESSED) ||
      qcow2_l2_host_offset (*l2_entry) != host)
    return 0;
  for (unsigned sc = 0; sc < img->header.subclusters; sc++) {
    enum qcow2_subcluster_type t =
      qcow2_classify_subcluster (&img->geom, *l2_entry, *bitmap, sc);
    if (t == QCOW2_SC_INVALID ||
        ((t == QCOW2_SC_UNALLOCATED_PLAIN || t == QCOW2_SC_UNALLOCATED_ALLOC) &&
         img->has_backing))
      return 0;
    data |= t == QCOW2_SC_NORMAL;
  }
  return data;
}

/* The cluster's guest content from its host cluster: the subclusters
 * without data of their own (per L2_ENTRY, BITMAP) read as zero.
 */
static int
read_candidate (struct qcow2_image *img, uint64_t host, uint64_t l2_entry,
                uint64_t bitmap, uint8_t *cluster, struct qcx_err *err)
{
  uint64_t scs = img->header.subcluster_size;

  if (qcx_io_pread (&img->io, cluster, img->header.cluster_size, host,
                    "data cluster", err) == -1)
    return -1;
  for (unsigned sc = 0; sc < img->header.subclusters; sc++)
    if (qcow2_classify_subcluster (&img->geom, l2_entry, bitmap, sc) !=
        QCOW2_SC_NORMAL)
      memset (cluster + sc * scs, 0, scs);
  return 0;
}

static int
compress_candidate (struct qcow2_image *img, uint64_t gc, uint64_t host,
                    struct qcx_err *err)
{
  struct qcx_codec *codec;
  const uint8_t *cdata;
  size_t clen = 0;
  uint64_t l2_entry, bitmap;
  int r;

  pthread_mutex_lock (&img->lock);
  qcow2_wait_not_busy (img, gc << img->header.cluster_bits);
  r = still_candidate (img, gc, host, &l2_entry, &bitmap, err);
  if (r == 1)
    r = qcow2_mark_busy (img, gc, err) == -1 ? -1 : 1;
  pthread_mutex_unlock (&img->lock);
  if (r != 1)
    return r;

  codec = qcx_codec_get (&img->codecs, err);
  r = codec ? 0 : -1;
  if (r == 0)
    r = read_candidate (img, host, l2_entry, bitmap, qcx_codec_outbuf (codec),
                        err);
  if (r == 0)
    r = compress_cluster (img, codec, qcx_codec_outbuf (codec), &cdata, &clen,
                          err);
  if (r == 0 && clen > 0)
    r = store_compressed (img, gc, cdata, clen, err);

  pthread_mutex_lock (&img->lock);
  qcow2_unmark_busy (img, gc);
  pthread_mutex_unlock (&img->lock);
  return r;
}

/* Take the oldest candidate if more than KEEP are waiting. */
static bool
take_candidate (struct qcow2_image *img, size_t keep,
                struct qcow2_compress_candidate *out)
{
  struct qcow2_compress_candidates *c = &img->candidates;
  bool taken = false;

  pthread_mutex_lock (&img->lock);
  if (c->nr > keep) {
    *out = c->list[0];
    memmove (c->list, c->list + 1, --c->nr * sizeof *c->list);
    taken = true;
  }
  pthread_mutex_unlock (&img->lock);
  return taken;
}

static int
compress_candidates_above (struct qcow2_image *img, size_t keep,
                           struct qcx_err *err)
{
  struct qcow2_compress_candidate cand;

  while (take_candidate (img, keep, &cand))
    if (compress_candidate (img, cand.guest_cluster, cand.host_offset,
                            err) == -1)
      return -1;
  return 0;
}

int
qcow2_compress_candidates_trim (struct qcow2_image *img, struct qcx_err *err)
{
  return compress_candidates_above (img, max_candidates (img), err);
}

int
qcow2_compress_candidates_flush (struct qcow2_image *img, struct qcx_err *err)
{
  int r;

  if (!img->compress_writes)
    return 0;
  pthread_rwlock_rdlock (&img->io_barrier);
  r = compress_candidates_above (img, 0, err);
  pthread_rwlock_unlock (&img->io_barrier);
  return r;
}

void
qcow2_compress_candidates_free (struct qcow2_image *img)
{
  free (img->candidates.list);
  img->candidates.list = NULL;
  img->candidates.nr = img->candidates.cap = 0;
}

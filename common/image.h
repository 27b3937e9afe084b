/* qcow2x common library: one open qcow2 image.
 *
 * struct qcow2_image is the one per-image state: the file, the parsed
 * header, the L1 table, the L2 cache and the per-thread codecs.  One
 * image is shared by every connection and thread of a server.
 *
 * Locking: `lock` protects the metadata (L1 table, L2 cache).  It is
 * held only while mapping guest offsets to host offsets; guest data is
 * read with pread(2) and decompressed outside it.  All functions below
 * may be called from many threads at once, except open and close.
 *
 * Ownership: qcow2_image_open() returns a heap object that
 * qcow2_image_close() frees; nothing else is owned by the caller.
 */
#ifndef QCX_IMAGE_H
#define QCX_IMAGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "compress.h"
#include "error.h"
#include "header.h"
#include "io.h"
#include "l2cache.h"
#include "l2entry.h"

struct qcow2_open_options {
  bool readonly;
  /* Bytes of L2 tables to cache; 0 picks the default (see
   * qcow2_default_l2_cache_bytes).
   */
  uint64_t l2_cache_bytes;
};

struct qcow2_image {
  struct qcx_io io;
  struct qcow2_header header;
  struct qcow2_l2_geometry geom;
  uint64_t *l1_table;           /* host byte order, header.l1_size entries */
  pthread_mutex_t lock;         /* metadata: l1_table, l2cache */
  struct l2cache l2cache;
  struct qcx_codec_pool codecs;
  bool readonly;
};

/* Default L2 cache: what maps 256 GiB of guest data (QEMU's default
 * reach for 64 KiB clusters: 32 MiB of standard entries), but never
 * more than the whole virtual disk needs.
 */
uint64_t qcow2_default_l2_cache_bytes (const struct qcow2_header *h);

int qcow2_image_open (const char *path, const struct qcow2_open_options *opts,
                      struct qcow2_image **imgp, struct qcx_err *err);
/* Open an image over an already opened store (e.g. memory); *io is
 * copied into the image, which then owns it.
 */
int qcow2_image_open_io (const struct qcx_io *io,
                         const struct qcow2_open_options *opts,
                         struct qcow2_image **imgp, struct qcx_err *err);
void qcow2_image_close (struct qcow2_image *img);

static inline uint64_t
qcow2_image_size (const struct qcow2_image *img)
{
  return img->header.size;
}

static inline bool
qcow2_image_has_backing (const struct qcow2_image *img)
{
  return img->header.backing_file != NULL;
}

/* A run of guest bytes with one subcluster type and, where there is a
 * host cluster, contiguous host bytes.
 */
struct qcow2_run {
  enum qcow2_subcluster_type type;
  uint64_t length;
  /* NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC: host offset of the run's
   * first byte.  COMPRESSED: the run lies in one guest cluster and
   * `compressed` locates its data; offset_in_cluster is where the run
   * starts within the decompressed cluster.
   */
  uint64_t host_offset;
  struct qcow2_compressed_desc compressed;
  uint64_t offset_in_cluster;
};

/* Map [offset, offset + max_len) from its start: fill *run with the
 * first run (length <= max_len, never 0).  An L2 table that cannot be
 * used (unaligned, beyond EOF, unreadable) or an invalid entry is an
 * error (EIO).  OFFSET must be below the virtual size.
 */
int qcow2_map_run (struct qcow2_image *img, uint64_t offset,
                   uint64_t max_len, struct qcow2_run *run,
                   struct qcx_err *err);

/* Read guest bytes [offset, offset + count) into BUF. */
int qcow2_image_read (struct qcow2_image *img, void *buf, uint64_t count,
                      uint64_t offset, struct qcx_err *err);

/* Block status: call CB for consecutive runs covering at least the
 * first byte of [offset, offset + count), with NBD-style flags
 * (QCX_EXTENT_*).  Stops early when CB returns non-zero, after
 * MAX_CALLS calls (0: no limit), or at the end of the range.
 */
typedef int (*qcow2_extent_cb) (void *opaque, uint64_t offset,
                                uint64_t length, unsigned flags);
int qcow2_image_extents (struct qcow2_image *img, uint64_t offset,
                         uint64_t count, unsigned max_calls,
                         qcow2_extent_cb cb, void *opaque,
                         struct qcx_err *err);

#endif /* QCX_IMAGE_H */

/* qcow2x common library: one open qcow2 image.
 *
 * struct qcow2_image is the one per-image state: the file, the parsed
 * header, the L1 table, the L2 cache and the per-thread codecs.  One
 * image is shared by every connection and thread of a server.
 *
 * Locking:
 *   - `lock` protects the metadata (L1 table, L2 cache, refcounts,
 *     allocator).  It is held while mapping guest offsets and while
 *     allocating; guest data of allocated clusters is read and written
 *     with pread(2)/pwrite(2) outside it, and decompressed outside it.
 *   - `io_barrier` (a writer-preferring rwlock) is held for reading by
 *     every request from its first mapping to its last data I/O.  A
 *     flush takes it for writing for an instant before freed clusters
 *     become reusable, so no request still holds a host offset that
 *     might be handed out again.  Lock order: io_barrier, then lock.
 * All functions below may be called from many threads at once, except
 * open and close.
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
#include "allocator.h"
#include "io.h"
#include "l2entry.h"
#include "refcount.h"
#include "tablecache.h"

struct qcow2_open_options {
  /* Read-only, or writable where the image allows it (see
   * readonly_reason in the image).
   */
  bool readonly;
  /* Bytes of L2 tables to cache; 0 picks the default (see
   * qcow2_default_l2_cache_bytes).
   */
  uint64_t l2_cache_bytes;
  /* Whether unallocated space defers to a backing file: -1 as the
   * header says, 0 no, 1 yes (the filter supplies a backing file the
   * header does not name).
   */
  int has_backing;
  /* Store writes compressed where possible (compress_write.c), at
   * this level (0: QEMU's default; checked against the image's
   * compression type at open).
   */
  bool compress_writes;
  int compress_level;
};

/* Clusters written in pieces with compress_writes, waiting to be
 * compressed (compress_write.c).
 */
struct qcow2_compress_candidate {
  uint64_t guest_cluster;
  uint64_t host_offset;         /* its normal host cluster then */
};
struct qcow2_compress_candidates {
  struct qcow2_compress_candidate *list;        /* oldest first */
  size_t nr, cap;
};

struct qcow2_image {
  struct qcx_io io;
  struct qcow2_header header;
  struct qcow2_l2_geometry geom;
  pthread_mutex_t lock;         /* metadata, see above */
  pthread_rwlock_t io_barrier;
  uint64_t *l1_table;           /* host byte order, header.l1_size entries */
  uint32_t *l1_dirty;           /* L1 indexes changed since the last flush */
  size_t nr_l1_dirty, l1_dirty_cap;
  struct tablecache l2_tables;
  struct qcow2_refcounts refcounts;     /* writable images only */
  struct qcow2_allocator alloc;
  struct qcx_codec_pool codecs;
  bool codecs_ready;
  bool has_backing;             /* unallocated space defers to a backing file */
  bool compress_writes;         /* qcow2_open_options.compress_writes */
  int compress_level;           /* ... and compress_level */
  bool readonly;
  const char *readonly_reason;  /* why a writable open fell back, or NULL */
  char inconsistency[1024];     /* check.c's or repair.c's finding */
  bool writable_checked;        /* qcow2_image_prepare_writable done */
  uint64_t refcounts_repaired;  /* refcounts a dirty-image repair set */
  bool header_prepared;         /* autoclear bits cleared (first write) */
  /* First error of a write-side request since the last flush: the
   * next flush reports it (an errno value; 0 none; atomic access).
   */
  int write_error;
  /* Guest clusters with an allocating write in progress (write.c). */
  uint64_t *busy;
  size_t nr_busy, busy_cap;
  pthread_cond_t busy_cond;
  struct qcow2_compress_candidates candidates;  /* under `lock` */
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

/* Before the first write: load the refcounts and walk the metadata
 * (check.h).  If the image turns out unsafe to write, it becomes
 * read-only with readonly_reason set and *BECAME_READONLY (may be NULL)
 * true; the call still succeeds.  Done
 * once; the plugin calls it when the first client that may write
 * connects, so read-only use never pays for the walk.  The write
 * functions call it themselves if needed.
 */
int qcow2_image_prepare_writable (struct qcow2_image *img,
                                  bool *became_readonly,
                                  struct qcx_err *err);

static inline uint64_t
qcow2_image_size (const struct qcow2_image *img)
{
  return img->header.size;
}

static inline bool
qcow2_image_has_backing (const struct qcow2_image *img)
{
  return img->has_backing;
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

/* Where a guest cluster's L2 entry lives (write side, mapping.c). */
struct qcow2_l2_slot {
  uint64_t l1_index;
  uint64_t l2_offset;           /* 0: no L2 table (entry reads as 0) */
  uint64_t index;               /* entry within the table */
};

/* With the metadata lock held: the L2 entry and subcluster bitmap (0
 * without extended L2) of the guest cluster holding OFFSET.  With
 * CREATE, a missing L2 table is allocated first.
 */
int qcow2_l2_load (struct qcow2_image *img, uint64_t offset, bool create,
                   struct qcow2_l2_slot *slot, uint64_t *l2_entry,
                   uint64_t *bitmap, struct qcx_err *err);
/* With the metadata lock held: replace the entry (slot must have a
 * table).  The change reaches the disk at the next write-back.
 */
int qcow2_l2_store (struct qcow2_image *img, const struct qcow2_l2_slot *slot,
                    uint64_t l2_entry, uint64_t bitmap, struct qcx_err *err);

/* Decompress the compressed cluster D into this thread's scratch
 * buffer; *CLUSTER points at it until the thread's next call.
 */
int qcow2_decompress_cluster (struct qcow2_image *img,
                              const struct qcow2_compressed_desc *d,
                              uint8_t **cluster, struct qcx_err *err);
/* The same into DST (a whole cluster), or the scratch buffer if NULL. */
int qcow2_decompress_cluster_to (struct qcow2_image *img,
                                 const struct qcow2_compressed_desc *d,
                                 uint8_t *dst, uint8_t **cluster,
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

/* Writes (write.c, zero.c).  FUA makes the request durable before it
 * returns.  Errors: EROFS on a read-only image; ENOTSUP from zero with
 * FAST when zeroing would have to write data.
 */
#define QCOW2_WRITE_FUA  1u
int qcow2_image_write (struct qcow2_image *img, const void *buf,
                       uint64_t count, uint64_t offset, unsigned flags,
                       struct qcx_err *err);

enum qcow2_zero_mode {
  QCOW2_ZERO_KEEP,              /* read as zero, keep host clusters */
  QCOW2_ZERO_MAY_TRIM,          /* read as zero, may release them */
  QCOW2_TRIM,                   /* may release; reads as zero after */
};
#define QCOW2_ZERO_FAST  2u
int qcow2_image_zero (struct qcow2_image *img, uint64_t count,
                      uint64_t offset, enum qcow2_zero_mode mode,
                      unsigned flags, struct qcx_err *err);

/* Internal to the write side (write.c), shared with zero.c. */
int qcow2_prepare_for_write (struct qcow2_image *img, struct qcx_err *err);
int qcow2_write_in_cluster (struct qcow2_image *img, const uint8_t *buf,
                            uint64_t offset, uint64_t len,
                            struct qcx_err *err);
int qcow2_free_compressed_later (struct qcow2_image *img, uint64_t l2_entry,
                                 struct qcx_err *err);
/* Lock held: own guest cluster GC for an allocating change; others
 * wait in qcow2_wait_not_busy.
 */
int qcow2_mark_busy (struct qcow2_image *img, uint64_t gc,
                     struct qcx_err *err);
void qcow2_unmark_busy (struct qcow2_image *img, uint64_t gc);

/* compress_write.c (with compress_writes), for write.c and flush.c.
 * qcow2_write_compressed: store the write [OFFSET, OFFSET+LEN) inside
 * one cluster compressed if it qualifies (*DONE); *CANDIDATE asks the
 * caller to write it normally and register the new host cluster with
 * qcow2_compress_candidate_add (lock held), then call
 * qcow2_compress_candidates_trim (no lock held).  The flush compresses
 * every candidate (no lock, no io barrier held).
 */
int qcow2_write_compressed (struct qcow2_image *img, const uint8_t *buf,
                            uint64_t offset, uint64_t len, bool *done,
                            bool *candidate, struct qcx_err *err);
int qcow2_compress_candidate_add (struct qcow2_image *img, uint64_t gc,
                                  uint64_t host, struct qcx_err *err);
int qcow2_compress_candidates_trim (struct qcow2_image *img,
                                    struct qcx_err *err);
int qcow2_compress_candidates_flush (struct qcow2_image *img,
                                     struct qcx_err *err);
void qcow2_compress_candidates_free (struct qcow2_image *img);

/* Remember ERR for the next flush (first one wins). */
void qcow2_note_write_error (struct qcow2_image *img,
                             const struct qcx_err *err);
/* Wait (lock held) until no allocating write owns OFFSET's cluster. */
void qcow2_wait_not_busy (struct qcow2_image *img, uint64_t offset);

/* Make every completed write durable (flush.c).  Fails if writing
 * back fails, and also (once) if a write-side request failed since the
 * previous flush: an error is never silently dropped.
 */
int qcow2_image_flush (struct qcow2_image *img, struct qcx_err *err);

/* At shutdown, after a successful flush: give back the file space the
 * allocator reserved past the last cluster in use (allocator.h).
 */
int qcow2_image_trim_file (struct qcow2_image *img, struct qcx_err *err);

/* The L2 cache's eviction callback: write back all metadata in order
 * (flush.c).  Called with the metadata lock held.
 */
int qcow2_metadata_make_clean (void *img, struct tablecache *c,
                               struct qcx_err *err);

#endif /* QCX_IMAGE_H */

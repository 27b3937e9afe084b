/* qcow2x common library: host cluster allocation.
 *
 * Finding a free cluster must not scan refcount blocks on every
 * allocation (the cost that grows with the image, background/002).
 * The allocator keeps an in-memory bitmap of host clusters in use,
 * built once from the refcount blocks when first needed and kept in
 * step with every refcount change made through it; the refcount blocks
 * stay the authority on disk.  Freed clusters are reused (lowest first)
 * before the file grows.
 *
 * Frees are deferred: qcow2_allocator_free_later() queues a decrement,
 * and flush.c applies the queue only after the metadata that dropped
 * the reference is durable and no request still in flight can be
 * using the cluster.  So a crash can leak a cluster but never leave a
 * reference to a cluster with refcount 0, and a cluster being released
 * is never reused under a read or write that mapped it earlier.
 *
 * Locking: all functions are called with the image's metadata lock
 * held.
 */
#ifndef QCX_ALLOCATOR_H
#define QCX_ALLOCATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct qcow2_image;

struct qcow2_free_range {
  uint64_t cluster;
  uint64_t count;
};

struct qcow2_allocator {
  bool built;
  uint64_t *used;               /* bit per host cluster: in use */
  uint64_t words;               /* capacity of `used` in 64-bit words */
  uint64_t end;                 /* clusters >= end are all free */
  uint64_t hint;                /* no free cluster below this */
  /* Bytes from here to the end of the file are zero and unreferenced
   * (the file was extended with ftruncate and nothing was written or
   * allocated there since), so a cluster allocated there needs no
   * zeroing.
   */
  uint64_t zero_from;
  /* Compressed data is packed: the next free byte of the host cluster
   * being filled with compressed clusters (0: none).
   */
  uint64_t compressed_next;
  struct qcow2_free_range *pending;
  size_t nr_pending, pending_cap;
  uint64_t pending_clusters;
};

void qcow2_allocator_free (struct qcow2_image *img);

/* Build the index now (it is otherwise built on first use).  Fails
 * (EINVAL) if the refcounts count clusters past the end of the file.
 */
int qcow2_allocator_build (struct qcow2_image *img, struct qcx_err *err);

/* Allocate N contiguous clusters with refcount 1; *HOST_OFFSET is the
 * byte offset of the first.  The file is extended to cover them (in
 * steps of at least QCOW2_FILE_GROWTH bytes, so that allocating writes
 * do not pay one ftruncate each).  *ZEROED (may be NULL) says whether
 * the clusters are known to read as zeros.
 */
#define QCOW2_FILE_GROWTH (1u << 20)
int qcow2_alloc_clusters (struct qcow2_image *img, uint64_t n,
                          uint64_t *host_offset, bool *zeroed,
                          struct qcx_err *err);

/* Allocate SIZE bytes (at most one cluster) for one compressed
 * cluster, packed after the previous one as QEMU packs them: every
 * host cluster the bytes touch gains one reference (qcow2.txt
 * "Compressed Clusters Descriptor": a compressed cluster is counted in
 * each host cluster it uses).  *HOST_OFFSET is the first byte.
 */
int qcow2_alloc_compressed_bytes (struct qcow2_image *img, uint64_t size,
                                  uint64_t *host_offset, struct qcx_err *err);

/* Give back file space past the last cluster in use (at shutdown,
 * after a flush): the file then ends where its clusters end.
 */
int qcow2_allocator_trim_file (struct qcow2_image *img, struct qcx_err *err);

/* Low level, for refcount.c: mark N free clusters in use without
 * touching refcounts (the caller counts them).  *CLUSTER is a cluster
 * index.  take_at_end places them at the end of everything in use.
 */
int qcow2_allocator_take (struct qcow2_image *img, uint64_t n,
                          uint64_t *cluster, struct qcx_err *err);
int qcow2_allocator_take_at_end (struct qcow2_image *img, uint64_t n,
                                 uint64_t *cluster, struct qcx_err *err);

/* Queue a refcount decrement of the N clusters from byte HOST_OFFSET
 * (see above).
 */
int qcow2_allocator_free_later (struct qcow2_image *img, uint64_t host_offset,
                                uint64_t n, struct qcx_err *err);

/* Take the queue (the caller applies it with ..._apply_frees). */
void qcow2_allocator_take_pending (struct qcow2_image *img,
                                   struct qcow2_free_range **ranges,
                                   size_t *nr);

/* Decrement the refcounts of RANGES; clusters reaching 0 become free
 * for reuse and their space is punched out of the file.
 */
int qcow2_allocator_apply_frees (struct qcow2_image *img,
                                 const struct qcow2_free_range *ranges,
                                 size_t nr, struct qcx_err *err);

#endif /* QCX_ALLOCATOR_H */

/* qcow2x common library: reference counts (qcow2.txt "Host cluster
 * management").
 *
 * The refcount table is kept in memory (at most 8 MiB, checked at
 * open); refcount blocks go through a write-back table cache.  Entry
 * widths of 1 to 64 bits are supported.  Growing the structures
 * (a new refcount block, or a larger refcount table that moves) is
 * done here, ordered so that a crash leaves at worst leaked clusters:
 * a new block or table is written and synced before anything points
 * to it, and an old table is freed only after the header points to
 * the new one durably.
 *
 * Locking: every function is called with the image's metadata lock
 * held.
 */
#ifndef QCX_REFCOUNT_H
#define QCX_REFCOUNT_H

#include <stdint.h>

#include "error.h"
#include "tablecache.h"

struct qcow2_image;

struct qcow2_refcounts {
  uint64_t *table;              /* host byte order */
  uint64_t table_entries;
  uint64_t table_offset;
  uint32_t table_clusters;
  unsigned order;               /* refcount_bits = 1 << order */
  uint64_t block_entries;       /* refcounts per block */
  uint64_t max;                 /* largest value an entry can hold */
  struct tablecache blocks;
};

/* Load the refcount table (images opened for writing). */
int qcow2_refcounts_load (struct qcow2_image *img, struct qcx_err *err);
void qcow2_refcounts_free (struct qcow2_image *img);

int qcow2_refcount_get (struct qcow2_image *img, uint64_t cluster,
                        uint64_t *value, struct qcx_err *err);

/* Add DELTA to the refcount of CLUSTER, creating refcount blocks and
 * growing the table as needed; *NEW_VALUE (may be NULL) receives the
 * result.  Over- and underflow are errors (EIO).
 */
int qcow2_refcount_update (struct qcow2_image *img, uint64_t cluster,
                           int64_t delta, uint64_t *new_value,
                           struct qcx_err *err);

/* Entry accessors on a raw refcount block (exposed for scans). */
uint64_t qcow2_refblock_get (const uint8_t *block, uint64_t index,
                             unsigned order);

#endif /* QCX_REFCOUNT_H */

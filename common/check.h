/* qcow2x common library: metadata consistency check before writing.
 *
 * Writing trusts the refcounts: a cluster with refcount 0 is handed out
 * again.  A hostile or damaged image whose refcounts do not cover what
 * the tables reference (refcount 0 on an L2 table or data cluster), or
 * whose tables overlap (an L2 table referenced twice, an L2 table
 * inside the refcount table or the header, a data cluster that is also
 * metadata), would make us write over metadata.  So before an image is
 * served writable, every reference is walked once, as `qemu-img check`
 * does, and any such problem makes the image read-only with a message
 * (design.md §4: refuse rather than write over metadata).  Leaks
 * (counted but unreferenced clusters) are harmless and not reported.
 *
 * Called at open, single-threaded.  Reads the file directly.
 */
#ifndef QCX_CHECK_H
#define QCX_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct qcow2_image;

/* Returns 0 and leaves PROBLEM empty if the image may be written, 0
 * with a one-line description in PROBLEM if it must not be, -1 on I/O
 * error.
 */
int qcow2_check_for_write (struct qcow2_image *img, char *problem,
                           size_t problem_len, struct qcx_err *err);

/* The same walk, counting the references to every host cluster (the
 * refcounts the image should have: metadata and data clusters 1, a host
 * cluster that holds compressed data 1 per compressed cluster touching
 * it; saturating at UINT16_MAX).  On success *COUNTS (the caller frees
 * it) holds *NR_COUNTS entries, clusters past them have no references.
 * Problems (overlaps, references beyond the end of the file, invalid
 * entries) are reported in PROBLEM as above, with *COUNTS NULL.
 * Refcounts are not read.  Used to repair a dirty image (repair.h).
 */
/* The counts take 2 bytes per host cluster up to the last one
 * referenced: at most this many clusters (256 MiB of counts; 8 TiB of
 * file with 64 KiB clusters), beyond which PROBLEM says so.
 */
#define QCOW2_REPAIR_MAX_CLUSTERS (128ULL << 20)

int qcow2_count_references (struct qcow2_image *img, char *problem,
                            size_t problem_len, uint16_t **counts,
                            uint64_t *nr_counts, struct qcx_err *err);

#endif /* QCX_CHECK_H */

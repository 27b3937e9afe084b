/* qcow2x common library: repairing the refcounts of a dirty image.
 *
 * An image written with lazy refcounts (qcow2.txt, compatible feature
 * bit 0) carries the dirty bit (incompatible bit 0) while its refcounts
 * may be stale; a crash leaves it set.  QEMU rebuilds the refcounts when
 * it opens such an image read-write, and so do we, before the first
 * write: every reference is counted from the L1/L2 tables and the other
 * metadata (check.h), each refcount that differs is set to the count
 * (references that were not counted yet, and leaks), the refcount
 * blocks are synced, and only then is the dirty bit cleared and synced.
 * A crash during the repair leaves the dirty bit set, so the next open
 * repairs again.
 *
 * Only refcounts inside existing refcount blocks are rewritten.  An
 * image whose references need a refcount block that does not exist
 * (the allocator cannot be trusted before the repair) or a count the
 * refcount width cannot hold, or whose metadata is inconsistent, is
 * left alone and reported in PROBLEM: the caller serves it read-only.
 *
 * Called once, with the image's metadata lock held and the refcount
 * table loaded, before the free-cluster index is built.
 */
#ifndef QCX_REPAIR_H
#define QCX_REPAIR_H

#include <stddef.h>

#include "error.h"

struct qcow2_image;

/* 0 with PROBLEM empty: repaired and the dirty bit cleared; 0 with a
 * one-line PROBLEM: not repaired (nothing written); -1 on I/O error.
 */
int qcow2_repair_dirty (struct qcow2_image *img, char *problem,
                        size_t problem_len, struct qcx_err *err);

#endif /* QCX_REPAIR_H */

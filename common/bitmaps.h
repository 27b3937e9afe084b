/* qcow2x common library: persistent dirty bitmaps (qcow2.txt "Bitmaps
 * extension", "Bitmaps").
 *
 * We do not keep bitmaps up to date.  Before the first write to an
 * image with consistent bitmaps we mark every bitmap "in use" (flag
 * bit 0: "the bitmap was not saved correctly and may be
 * inconsistent"), which is what QEMU itself does while it has an
 * image open for writing.  The bitmaps extension and its clusters stay
 * as they are, so their refcounts stay right (clearing the autoclear
 * bit instead would leave those clusters unaccounted for, i.e. leaked).
 *
 * Called with the image's metadata lock held.
 */
#ifndef QCX_BITMAPS_H
#define QCX_BITMAPS_H

#include <stdint.h>

#include "error.h"

struct qcow2_image;

/* QEMU's limits on the number of bitmaps and the bitmap directory. */
#define QCOW2_MAX_BITMAPS 65535
#define QCOW2_MAX_BITMAP_DIRECTORY_BYTES (64u << 20)

int qcow2_bitmaps_mark_in_use (struct qcow2_image *img, struct qcx_err *err);

/* Call FN for every cluster range the bitmaps occupy: the directory,
 * each bitmap table and each data cluster a table entry names (for
 * the consistency walk, check.h).  Only when the bitmaps are in effect
 * (autoclear bit set); tables are bounded by QCOW2_MAX_BITMAP_TABLE_BYTES.
 */
#define QCOW2_MAX_BITMAP_TABLE_BYTES (64u << 20)
typedef void (*qcow2_bitmap_range_fn) (void *opaque, uint64_t offset,
                                       uint64_t len, const char *what);
int qcow2_bitmaps_walk (struct qcow2_image *img, qcow2_bitmap_range_fn fn,
                        void *opaque, struct qcx_err *err);

#endif /* QCX_BITMAPS_H */

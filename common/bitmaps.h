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

#include "error.h"

struct qcow2_image;

/* QEMU's limit on the bitmap directory. */
#define QCOW2_MAX_BITMAP_DIRECTORY_BYTES (64u << 20)

int qcow2_bitmaps_mark_in_use (struct qcow2_image *img, struct qcx_err *err);

#endif /* QCX_BITMAPS_H */

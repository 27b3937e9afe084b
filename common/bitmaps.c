/* qcow2x common library: persistent dirty bitmaps (see bitmaps.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bitmaps.h"
#include "byteorder.h"
#include "image.h"

#define BITMAP_ENTRY_FIXED 24           /* "Bitmap directory" entry header */
#define BITMAP_FLAG_IN_USE 1u

/* Set the in-use flag of every entry of the directory in BUF (LEN
 * bytes, NB entries), validating each entry's lengths first.
 */
static int
mark_entries (uint8_t *buf, uint64_t len, uint32_t nb, struct qcx_err *err)
{
  uint64_t off = 0;

  for (uint32_t i = 0; i < nb; i++) {
    uint32_t name_size, extra_size;
    uint64_t entry;

    if (len - off < BITMAP_ENTRY_FIXED)
      return qcx_error (err, EINVAL, "bitmap directory entry %" PRIu32
                        " overruns the directory", i);
    name_size = load_be16 (buf + off + 18);
    extra_size = load_be32 (buf + off + 20);
    entry = BITMAP_ENTRY_FIXED + (uint64_t) extra_size + name_size;
    entry = (entry + 7) / 8 * 8;
    if (entry > len - off)
      return qcx_error (err, EINVAL, "bitmap directory entry %" PRIu32
                        " overruns the directory", i);
    store_be32 (buf + off + 12,
                load_be32 (buf + off + 12) | BITMAP_FLAG_IN_USE);
    off += entry;
  }
  return 0;
}

int
qcow2_bitmaps_mark_in_use (struct qcow2_image *img, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint64_t len = h->bitmap_directory_size, off = h->bitmap_directory_offset;
  uint8_t *buf;
  int r;

  if (!h->has_bitmaps_ext || h->nb_bitmaps == 0)
    return 0;
  if (len == 0 || len > QCOW2_MAX_BITMAP_DIRECTORY_BYTES ||
      (off & (h->cluster_size - 1)) || off == 0 ||
      !qcx_io_contains (&img->io, off, len))
    return qcx_error (err, EINVAL, "bitmap directory (offset 0x%" PRIx64
                      ", %" PRIu64 " bytes) is invalid", off, len);
  buf = malloc (len);
  if (buf == NULL)
    return qcx_error (err, errno, "malloc: %s", strerror (errno));
  r = qcx_io_pread (&img->io, buf, len, off, "bitmap directory", err);
  if (r == 0)
    r = mark_entries (buf, len, h->nb_bitmaps, err);
  if (r == 0)
    r = qcx_io_pwrite (&img->io, buf, len, off, "bitmap directory", err);
  free (buf);
  return r;
}

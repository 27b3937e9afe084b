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

/* The directory, read and validated: *BUF (caller frees) holds LEN
 * bytes; *ENTRIES[i] is the offset of entry i (nb_bitmaps of them).
 */
static int
read_directory (struct qcow2_image *img, uint8_t **buf, uint64_t **entries,
                struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint64_t len = h->bitmap_directory_size, off = h->bitmap_directory_offset;
  uint64_t pos = 0;

  *buf = NULL;
  *entries = NULL;
  if (h->nb_bitmaps > QCOW2_MAX_BITMAPS)
    return qcx_error (err, EINVAL, "too many bitmaps (%" PRIu32 ")",
                      h->nb_bitmaps);
  if (len == 0 || len > QCOW2_MAX_BITMAP_DIRECTORY_BYTES ||
      (off & (h->cluster_size - 1)) || off == 0 ||
      !qcx_io_contains (&img->io, off, len))
    return qcx_error (err, EINVAL, "bitmap directory (offset 0x%" PRIx64
                      ", %" PRIu64 " bytes) is invalid", off, len);
  *buf = malloc (len);
  *entries = malloc (h->nb_bitmaps * sizeof **entries);
  if (*buf == NULL || *entries == NULL)
    return qcx_error (err, ENOMEM, "out of memory for the bitmap directory");
  if (qcx_io_pread (&img->io, *buf, len, off, "bitmap directory", err) == -1)
    return -1;
  for (uint32_t i = 0; i < h->nb_bitmaps; i++) {
    uint64_t entry;

    if (len - pos < BITMAP_ENTRY_FIXED)
      return qcx_error (err, EINVAL, "bitmap directory entry %" PRIu32
                        " overruns the directory", i);
    entry = BITMAP_ENTRY_FIXED + (uint64_t) load_be32 (*buf + pos + 20) +
      load_be16 (*buf + pos + 18);
    entry = (entry + 7) / 8 * 8;
    if (entry > len - pos)
      return qcx_error (err, EINVAL, "bitmap directory entry %" PRIu32
                        " overruns the directory", i);
    (*entries)[i] = pos;
    pos += entry;
  }
  return 0;
}

int
qcow2_bitmaps_mark_in_use (struct qcow2_image *img, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint8_t *buf;
  uint64_t *entries;
  int r;

  if (!h->has_bitmaps_ext || h->nb_bitmaps == 0)
    return 0;
  r = read_directory (img, &buf, &entries, err);
  for (uint32_t i = 0; r == 0 && i < h->nb_bitmaps; i++) {
    uint8_t *flags = buf + entries[i] + 12;
    store_be32 (flags, load_be32 (flags) | BITMAP_FLAG_IN_USE);
  }
  if (r == 0)
    r = qcx_io_pwrite (&img->io, buf, h->bitmap_directory_size,
                       h->bitmap_directory_offset, "bitmap directory", err);
  free (buf);
  free (entries);
  return r;
}

/* One bitmap's table and the data clusters it names. */
static int
walk_table (struct qcow2_image *img, uint64_t table_offset,
            uint32_t table_size, qcow2_bitmap_range_fn fn, void *opaque,
            struct qcx_err *err)
{
  uint64_t cs = img->header.cluster_size;
  uint64_t bytes = (uint64_t) table_size * 8;
  uint8_t *table;

  if (table_offset == 0)
    return 0;           /* an empty bitmap (background/004) */
  if (bytes > QCOW2_MAX_BITMAP_TABLE_BYTES)
    return qcx_error (err, EINVAL, "bitmap table too large (%" PRIu32
                      " entries)", table_size);
  fn (opaque, table_offset, bytes, "bitmap table");
  table = malloc (bytes ? bytes : 1);
  if (table == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
  if (qcx_io_pread (&img->io, table, bytes, table_offset, "bitmap table",
                    err) == -1) {
    free (table);
    return -1;
  }
  for (uint32_t i = 0; i < table_size; i++) {
    uint64_t data = load_be64 (table + 8 * (uint64_t) i) &
      0x00fffffffffffe00ULL;
    if (data)
      fn (opaque, data, cs, "bitmap data cluster");
  }
  free (table);
  return 0;
}

int
qcow2_bitmaps_walk (struct qcow2_image *img, qcow2_bitmap_range_fn fn,
                    void *opaque, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  uint8_t *buf;
  uint64_t *entries;
  int r;

  if (!h->has_bitmaps_ext || h->nb_bitmaps == 0 ||
      !(h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
    return 0;
  r = read_directory (img, &buf, &entries, err);
  if (r == 0)
    fn (opaque, h->bitmap_directory_offset, h->bitmap_directory_size,
        "bitmap directory");
  for (uint32_t i = 0; r == 0 && i < h->nb_bitmaps; i++) {
    const uint8_t *e = buf + entries[i];
    r = walk_table (img, load_be64 (e), load_be32 (e + 8), fn, opaque, err);
  }
  free (buf);
  free (entries);
  return r;
}

/* qcow2x fuzz target 1: open an image from the fuzzer's bytes
 * (read-only memory file) and read it: every extent and every
 * allocated cluster within the walker's budget (fuzz-common.h).
 *
 * Input: the image file, byte for byte, or the sparse "QCXS" container
 * of it (fuzz-common.h; the seeds use it).  A hash
 * of the input picks the open options (backing or not, a tiny L2
 * cache to force evictions) and the sample offsets.
 */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint64_t h = fuzz_hash (data, size);
  struct qcow2_open_options opts = {
    .readonly = true,
    .has_backing = (int) (h % 3) - 1,          /* -1, 0, 1 */
    .l2_cache_bytes = 0,
  };
  struct qcow2_image *img;
  struct qcx_io io;
  struct qcx_err err;
  size_t file_size;
  uint8_t *file = fuzz_decode_image (data, size, &file_size);

  if ((h >> 8) & 1)
    opts.l2_cache_bytes = 1;                   /* the minimum: 2 tables */
  if (fuzz_known_ext_overrun (file, file_size)) {
    free (file);
    return 0;
  }
  qcx_io_open_memory (&io, file, file_size);
  if (qcow2_image_open_io (&io, &opts, &img, &err) == 0) {
    fuzz_walk_image (img, h, "image");
    qcow2_image_close (img);
  }
  free (file);
  return 0;
}

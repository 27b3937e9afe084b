/* qcow2x common library: block status of one layer (design.md §2). */
#include <errno.h>

#include "image.h"

int
qcow2_image_extents (struct qcow2_image *img, uint64_t offset,
                     uint64_t count, unsigned max_calls,
                     qcow2_extent_cb cb, void *opaque, struct qcx_err *err)
{
  bool backing = qcow2_image_has_backing (img);
  uint64_t end, start = offset, len = 0;
  unsigned flags = 0, calls = 0;

  if (offset > img->header.size || count > img->header.size - offset)
    return qcx_error (err, EINVAL, "block status beyond the end of the disk");
  end = offset + count;
  /* Merge runs whose flags agree, so the caller sees one extent per
   * change of state, not one per subcluster.
   */
  while (offset < end) {
    struct qcow2_run run;
    unsigned f;

    if (qcow2_map_run (img, offset, end - offset, &run, err) == -1) {
      /* Report what we know; fail only if nothing was mapped. */
      if (len > 0)
        break;
      return -1;
    }
    f = qcow2_subcluster_extent_flags (run.type, backing);
    if (len > 0 && f != flags) {
      if (cb (opaque, start, len, flags) != 0)
        return 0;
      if (max_calls && ++calls >= max_calls)
        return 0;
      len = 0;
    }
    if (len == 0) {
      start = offset;
      flags = f;
    }
    len += run.length;
    offset += run.length;
  }
  if (len > 0)
    cb (opaque, start, len, flags);
  return 0;
}

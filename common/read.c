/* qcow2x common library: reading guest data. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "image.h"

int
qcow2_decompress_cluster_to (struct qcow2_image *img,
                             const struct qcow2_compressed_desc *d,
                             uint8_t *dst, uint8_t **cluster,
                             struct qcx_err *err)
{
  uint64_t file_size = qcx_io_size (&img->io);
  struct qcx_codec *codec;
  uint64_t n;

  if (d->host_offset >= file_size)
    return qcx_error (err, EIO, "compressed cluster at host offset 0x%"
                      PRIx64 " is beyond the end of the file",
                      d->host_offset);
  /* The last sector may be cut short by the end of the file: QEMU does
   * not pad the final compressed cluster.
   */
  n = file_size - d->host_offset;
  if (n > d->max_bytes)
    n = d->max_bytes;
  if (n > img->codecs.in_size)
    return qcx_error (err, EIO, "compressed cluster at host offset 0x%"
                      PRIx64 " is larger than 2 clusters", d->host_offset);
  codec = qcx_codec_get (&img->codecs, err);
  if (codec == NULL)
    return -1;
  if (dst == NULL)
    dst = qcx_codec_outbuf (codec);
  if (qcx_io_pread (&img->io, qcx_codec_inbuf (codec), n, d->host_offset,
                    "compressed cluster", err) == -1 ||
      qcx_decompress (codec, img->header.compression_type,
                      qcx_codec_inbuf (codec), n, dst,
                      img->header.cluster_size, err) == -1)
    return -1;
  if (cluster)
    *cluster = dst;
  return 0;
}

int
qcow2_decompress_cluster (struct qcow2_image *img,
                          const struct qcow2_compressed_desc *d,
                          uint8_t **cluster, struct qcx_err *err)
{
  return qcow2_decompress_cluster_to (img, d, NULL, cluster, err);
}

/* Copy the bytes of a compressed run.  Runs outside the metadata lock
 * with this thread's codec.  A run that is a whole cluster is
 * decompressed straight into the caller's buffer.
 */
static int
read_compressed (struct qcow2_image *img, const struct qcow2_run *run,
                 uint8_t *buf, struct qcx_err *err)
{
  uint8_t *cluster;

  if (run->offset_in_cluster == 0 && run->length == img->header.cluster_size)
    return qcow2_decompress_cluster_to (img, &run->compressed, buf, NULL,
                                        err);
  if (qcow2_decompress_cluster (img, &run->compressed, &cluster, err) == -1)
    return -1;
  memcpy (buf, cluster + run->offset_in_cluster, run->length);
  return 0;
}

int
qcow2_image_read (struct qcow2_image *img, void *buf, uint64_t count,
                  uint64_t offset, struct qcx_err *err)
{
  uint8_t *p = buf;

  int r = 0;

  if (offset > img->header.size || count > img->header.size - offset)
    return qcx_error (err, EINVAL, "read beyond the end of the disk");
  pthread_rwlock_rdlock (&img->io_barrier);
  while (count > 0 && r == 0) {
    struct qcow2_run run;

    r = qcow2_map_run (img, offset, count, &run, err);
    if (r == -1)
      break;
    switch (run.type) {
    case QCOW2_SC_NORMAL:
      r = qcx_io_pread (&img->io, p, run.length, run.host_offset,
                        "data cluster", err);
      break;
    case QCOW2_SC_COMPRESSED:
      r = read_compressed (img, &run, p, err);
      break;
    case QCOW2_SC_ZERO_PLAIN:
    case QCOW2_SC_ZERO_ALLOC:
    case QCOW2_SC_UNALLOCATED_PLAIN:
    case QCOW2_SC_UNALLOCATED_ALLOC:
      /* Unallocated space reads as zero from this layer alone; the
       * filter reads it from the backing chain instead.
       */
      memset (p, 0, run.length);
      break;
    case QCOW2_SC_INVALID:
      r = qcx_error (err, EIO, "invalid L2 entry at guest offset 0x%"
                     PRIx64, offset);
      break;
    }
    p += run.length;
    offset += run.length;
    count -= run.length;
  }
  pthread_rwlock_unlock (&img->io_barrier);
  return r;
}

/* qcow2x common library: opening and closing an image (see image.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "image.h"

#define GUEST_REACH (256ULL << 30)      /* QEMU's default L2 cache reach */

uint64_t
qcow2_default_l2_cache_bytes (const struct qcow2_header *h)
{
  uint64_t reach_per_table = h->l2_entries << h->cluster_bits;
  uint64_t tables = GUEST_REACH / reach_per_table;

  if (tables == 0)
    tables = 1;
  /* 32 MiB of standard entries, i.e. 32 MiB for 64 KiB clusters and
   * 64 MiB for 64 KiB clusters with extended entries; smaller clusters
   * would need far more memory for the same reach, so cap at that.
   */
  if (tables * h->cluster_size > (32ULL << 20) * (h->l2_entry_size / 8))
    tables = ((32ULL << 20) * (h->l2_entry_size / 8)) / h->cluster_size;
  if (tables > h->l1_size_needed)
    tables = h->l1_size_needed;
  if (tables == 0)
    tables = 1;
  return tables * h->cluster_size;
}

static int
load_l1_table (struct qcow2_image *img, struct qcx_err *err)
{
  const struct qcow2_header *h = &img->header;
  size_t bytes = (size_t) h->l1_size * 8;

  /* l1_size is bounded by header.c (QCOW2_MAX_L1_BYTES). */
  img->l1_table = malloc (bytes ? bytes : 8);
  if (img->l1_table == NULL)
    return qcx_error (err, errno, "malloc L1 table: %s", strerror (errno));
  if (bytes && qcx_io_pread (&img->io, img->l1_table, bytes,
                             h->l1_table_offset, "L1 table", err) == -1)
    return -1;
  for (uint32_t i = 0; i < h->l1_size; i++)
    img->l1_table[i] = load_be64 (&img->l1_table[i]);
  return 0;
}

int
qcow2_image_open_io (const struct qcx_io *io,
                     const struct qcow2_open_options *opts,
                     struct qcow2_image **imgp, struct qcx_err *err)
{
  struct qcow2_image *img;
  uint64_t cache_bytes;
  int r;

  *imgp = NULL;
  img = calloc (1, sizeof *img);
  if (img == NULL)
    return qcx_error (err, errno, "calloc: %s", strerror (errno));
  img->io = *io;
  img->readonly = opts->readonly;
  r = pthread_mutex_init (&img->lock, NULL);
  if (r != 0) {
    free (img);
    return qcx_error (err, r, "pthread_mutex_init: %s", strerror (r));
  }
  if (qcow2_header_parse (&img->io, &img->header, err) == -1)
    goto fail_header;
  img->geom.cluster_bits = img->header.cluster_bits;
  img->geom.extended_l2 = img->header.extended_l2;
  cache_bytes = opts->l2_cache_bytes ? opts->l2_cache_bytes
    : qcow2_default_l2_cache_bytes (&img->header);
  if (load_l1_table (img, err) == -1)
    goto fail_l1;
  if (l2cache_init (&img->l2cache, img->header.cluster_size, cache_bytes,
                    err) == -1)
    goto fail_l1;
  if (qcx_codec_pool_init (&img->codecs, img->header.cluster_size, err) == -1)
    goto fail_cache;
  *imgp = img;
  return 0;

 fail_cache:
  l2cache_free (&img->l2cache);
 fail_l1:
  free (img->l1_table);
  qcow2_header_free (&img->header);
 fail_header:
  pthread_mutex_destroy (&img->lock);
  free (img);
  return -1;
}

int
qcow2_image_open (const char *path, const struct qcow2_open_options *opts,
                  struct qcow2_image **imgp, struct qcx_err *err)
{
  struct qcx_io io;

  if (qcx_io_open_file (&io, path, opts->readonly, err) == -1)
    return -1;
  if (qcow2_image_open_io (&io, opts, imgp, err) == -1) {
    qcx_io_close (&io);
    return -1;
  }
  return 0;
}

void
qcow2_image_close (struct qcow2_image *img)
{
  if (img == NULL)
    return;
  qcx_codec_pool_destroy (&img->codecs);
  l2cache_free (&img->l2cache);
  free (img->l1_table);
  qcow2_header_free (&img->header);
  qcx_io_close (&img->io);
  pthread_mutex_destroy (&img->lock);
  free (img);
}

/* qcow2x common library: opening and closing an image (see image.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "check.h"
#include "image.h"
#include "repair.h"

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
    return qcx_error (err, errno, "malloc L1 table: %s", qcx_strerror (errno));
  if (bytes && qcx_io_pread (&img->io, img->l1_table, bytes,
                             h->l1_table_offset, "L1 table", err) == -1)
    return -1;
  for (uint32_t i = 0; i < h->l1_size; i++)
    img->l1_table[i] = load_be64 (&img->l1_table[i]);
  return 0;
}

/* Reasons an image that could be written must still be served
 * read-only.  Writing would be wrong or unsafe, not impossible.
 */
static const char *
readonly_reason (const struct qcow2_header *h)
{
  if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
    return "the image is marked corrupt (incompatible bit 1)";
  if (h->nb_snapshots > 0)
    return "writing images with internal snapshots is not supported";
  return NULL;
}

static int
init_locks (struct qcow2_image *img, struct qcx_err *err)
{
  pthread_rwlockattr_t attr;
  int r;

  r = pthread_mutex_init (&img->lock, NULL);
  if (r != 0)
    return qcx_error (err, r, "pthread_mutex_init: %s", qcx_strerror (r));
  r = pthread_cond_init (&img->busy_cond, NULL);
  if (r != 0) {
    pthread_mutex_destroy (&img->lock);
    return qcx_error (err, r, "pthread_cond_init: %s", qcx_strerror (r));
  }
  pthread_rwlockattr_init (&attr);
  /* A flush waiting for the barrier must not starve behind a stream
   * of new requests.
   */
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  r = pthread_rwlock_init (&img->io_barrier, &attr);
  pthread_rwlockattr_destroy (&attr);
  if (r != 0) {
    pthread_cond_destroy (&img->busy_cond);
    pthread_mutex_destroy (&img->lock);
    return qcx_error (err, r, "pthread_rwlock_init: %s", qcx_strerror (r));
  }
  return 0;
}

/* A writable image must be consistent enough that writing cannot hit
 * metadata (check.h); otherwise it is served read-only.
 */
static int
check_before_writing (struct qcow2_image *img, struct qcx_err *err)
{
  char problem[200];

  if (qcow2_check_for_write (img, problem, sizeof problem, err) == -1)
    return -1;
  if (problem[0]) {
    snprintf (img->inconsistency, sizeof img->inconsistency,
              "the metadata is inconsistent: %s; see 'qemu-img check'",
              problem);
    img->readonly = img->io.readonly = true;
    img->readonly_reason = img->inconsistency;
  }
  return 0;
}

static int
open_metadata (struct qcow2_image *img, const struct qcow2_open_options *opts,
               struct qcx_err *err)
{
  uint64_t cache_bytes;

  if (qcow2_header_parse (&img->io, &img->header, err) == -1)
    return -1;
  img->geom.cluster_bits = img->header.cluster_bits;
  img->geom.extended_l2 = img->header.extended_l2;
  img->compress_writes = opts->compress_writes;
  img->compress_level = opts->compress_level;
  if (opts->compress_level != 0) {
    int min, max;
    if (!qcx_compress_level_valid (img->header.compression_type,
                                   opts->compress_level, &min, &max))
      return qcx_error (err, EINVAL, "compression level %d is out of range "
                        "for %s (%d to %d)", opts->compress_level,
                        img->header.compression_type == QCOW2_COMPRESSION_ZSTD
                        ? "zstd" : "zlib", min, max);
  }
  img->has_backing = opts->has_backing >= 0 ? opts->has_backing
    : img->header.backing_file != NULL;
  if (!img->readonly) {
    img->readonly_reason = readonly_reason (&img->header);
    if (img->readonly_reason)
      img->readonly = img->io.readonly = true;
  }
  cache_bytes = opts->l2_cache_bytes ? opts->l2_cache_bytes
    : qcow2_default_l2_cache_bytes (&img->header);
  if (load_l1_table (img, err) == -1 ||
      tablecache_init (&img->l2_tables, "L2 table", img->header.cluster_size,
                       cache_bytes, qcow2_metadata_make_clean, img,
                       err) == -1 ||
      qcx_codec_pool_init (&img->codecs, img->header.cluster_size,
                           err) == -1)
    return -1;
  img->codecs_ready = true;
  return 0;
}

int
qcow2_image_open_io (const struct qcx_io *io,
                     const struct qcow2_open_options *opts,
                     struct qcow2_image **imgp, struct qcx_err *err)
{
  struct qcow2_image *img;

  *imgp = NULL;
  img = calloc (1, sizeof *img);
  if (img == NULL)
    return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
  img->io = *io;
  img->readonly = opts->readonly || io->readonly;
  if (init_locks (img, err) == -1) {
    free (img);
    return -1;
  }
  if (open_metadata (img, opts, err) == -1) {
    /* The caller still owns the store on failure: forget our copy. */
    memset (&img->io, 0, sizeof img->io);
    img->io.fd = -1;
    qcow2_image_close (img);
    return -1;
  }
  *imgp = img;
  return 0;
}

int
qcow2_image_open (const char *path, const struct qcow2_open_options *opts,
                  struct qcow2_image **imgp, struct qcx_err *err)
{
  struct qcx_io io;
  const char *reason = NULL;

  if (qcx_io_open_file (&io, path, opts->readonly, err) == -1) {
    if (opts->readonly ||
        (err->errnum != EACCES && err->errnum != EROFS && err->errnum != EPERM))
      return -1;
    /* Not writable by us: serve it read-only. */
    reason = "the file is not writable";
    if (qcx_io_open_file (&io, path, true, err) == -1)
      return -1;
  }
  if (qcow2_image_open_io (&io, opts, imgp, err) == -1) {
    qcx_io_close (&io);
    return -1;
  }
  if (reason && (*imgp)->readonly_reason == NULL)
    (*imgp)->readonly_reason = reason;
  return 0;
}

/* The dirty bit (lazy refcounts left stale): repair before writing, as
 * QEMU does at a read-write open (repair.h), or serve read-only.
 */
static int
repair_if_dirty (struct qcow2_image *img, struct qcx_err *err)
{
  char problem[384];

  if (!(img->header.incompatible_features & QCOW2_INCOMPAT_DIRTY))
    return 0;
  if (qcow2_repair_dirty (img, problem, sizeof problem, err) == -1)
    return -1;
  if (problem[0]) {
    snprintf (img->inconsistency, sizeof img->inconsistency,
              "the image has the dirty bit set (lazy refcounts were not "
              "written back) and cannot be repaired here: %s; repair it "
              "with 'qemu-img check -r all'", problem);
    img->readonly = img->io.readonly = true;
    img->readonly_reason = img->inconsistency;
  }
  return 0;
}

static void
make_readonly_refcounts (struct qcow2_image *img, const struct qcx_err *why)
{
  snprintf (img->inconsistency, sizeof img->inconsistency,
            "the refcounts cannot be used: %.200s", why->msg);
  img->readonly = img->io.readonly = true;
  img->readonly_reason = img->inconsistency;
}

int
qcow2_image_prepare_writable (struct qcow2_image *img, bool *became_readonly,
                              struct qcx_err *err)
{
  int r = 0;

  if (became_readonly)
    *became_readonly = false;
  pthread_mutex_lock (&img->lock);
  if (!img->readonly && !img->writable_checked) {
    struct qcx_err why = { 0 };
    /* Refcounts that cannot even be loaded make the image read-only
     * too: reading does not need them.
     */
    /* Load, walk (which also rejects refcount blocks that overlap or
     * lie outside the file, so that the allocator's scan below reads
     * each block once), then index the free clusters.
     */
    if (qcow2_refcounts_load (img, &why) == -1)
      make_readonly_refcounts (img, &why);
    else {
      /* After a repair the walk runs a second time, on purpose: it
       * checks the repair's result the way every image is checked
       * (once, at the first writer; dirty images only).
       */
      r = repair_if_dirty (img, err);
      if (r == 0 && !img->readonly)
        r = check_before_writing (img, err);
      if (r == 0 && !img->readonly &&
          qcow2_allocator_build (img, &why) == -1)
        make_readonly_refcounts (img, &why);
    }
    if (r == 0) {
      img->writable_checked = true;
      if (became_readonly)
        *became_readonly = img->readonly;
    }
  }
  pthread_mutex_unlock (&img->lock);
  return r;
}

void
qcow2_image_close (struct qcow2_image *img)
{
  if (img == NULL)
    return;
  if (img->codecs_ready)
    qcx_codec_pool_destroy (&img->codecs);
  if (img->l2_tables.buckets)
    tablecache_free (&img->l2_tables);
  qcow2_refcounts_free (img);
  qcow2_allocator_free (img);
  free (img->l1_dirty);
  free (img->busy);
  qcow2_compress_candidates_free (img);
  free (img->l1_table);
  qcow2_header_free (&img->header);
  qcx_io_close (&img->io);
  pthread_rwlock_destroy (&img->io_barrier);
  pthread_cond_destroy (&img->busy_cond);
  pthread_mutex_destroy (&img->lock);
  free (img);
}

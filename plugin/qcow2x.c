/* nbdkit-qcow2x-plugin: serve one qcow2 image over NBD.
 *
 * This file is only the nbdkit glue: parameters, the image's lifetime
 * and the NBD callbacks.  The format lives in common/ (image.h).
 *
 * One image is opened per server process in .get_ready, before any
 * connection, so bad images are refused at start-up and every
 * connection shares the same metadata (thread model PARALLEL,
 * multi-conn safe).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "image.h"
#include "create.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

_Static_assert (QCX_EXTENT_HOLE == NBDKIT_EXTENT_HOLE &&
                QCX_EXTENT_ZERO == NBDKIT_EXTENT_ZERO,
                "extent flags must match nbdkit's");

/* Parameters. */
static char *filename;
static bool layer_only;
static int64_t l2_cache_size;     /* 0: default */
static int has_backing = -1;      /* -1: as the header says */
static bool compress_writes;
static int compress_level;        /* 0: QEMU's default */
/* inject-error=OP:NTH:ERRNO[:persistent] (testing only). */
static struct {
  bool set;
  enum qcx_io_op op;
  uint64_t nth;
  int errnum;
  bool persistent;
} inject;

/* The image, shared by all connections. */
static struct qcow2_image *image;

static void
qcx_unload (void)
{
  struct qcx_err err = { 0 };

  /* Write back what the caches hold: a clean shutdown leaves no
   * leaks.
   */
  if (image && qcow2_image_flush (image, &err) == -1)
    nbdkit_error ("%s: flushing at shutdown: %s", filename, err.msg);
  else if (image && qcow2_image_trim_file (image, &err) == -1)
    nbdkit_error ("%s: trimming the file at shutdown: %s", filename,
                  err.msg);
  qcow2_image_close (image);
  image = NULL;
  free (filename);
  create_unload ();
}

/* inject-error=OP:NTH:ERRNO[:persistent], e.g. write:20:ENOSPC: the
 * NTH following write (sync, truncate) of the image file fails.  For
 * testing the error paths; see the man page.
 */
static int
parse_inject_error (const char *value)
{
  char op[16], errname[16], mode[16] = "";
  unsigned long long nth;
  int n = sscanf (value, "%15[a-z]:%llu:%15[A-Z]:%15s", op, &nth, errname,
                  mode);

  if (n < 3)
    goto bad;
  if (strcmp (op, "write") == 0) inject.op = QCX_IO_PWRITE;
  else if (strcmp (op, "sync") == 0) inject.op = QCX_IO_SYNC;
  else if (strcmp (op, "truncate") == 0) inject.op = QCX_IO_TRUNCATE;
  else goto bad;
  if (strcmp (errname, "ENOSPC") == 0) inject.errnum = ENOSPC;
  else if (strcmp (errname, "EIO") == 0) inject.errnum = EIO;
  else if (strcmp (errname, "EDQUOT") == 0) inject.errnum = EDQUOT;
  else goto bad;
  if (n == 4 && strcmp (mode, "persistent") != 0)
    goto bad;
  inject.persistent = n == 4;
  inject.nth = nth;
  inject.set = nth > 0;
  return 0;
 bad:
  nbdkit_error ("inject-error: expected OP:NTH:ERRNO[:persistent] with OP "
                "write, sync or truncate and ERRNO ENOSPC, EIO or EDQUOT");
  return -1;
}

static int
qcx_config (const char *key, const char *value)
{
  int r = create_config (key, value);

  if (r != 0)
    return r == 1 ? 0 : -1;
  if (strcmp (key, "file") == 0) {
    free (filename);
    /* Not realpath: with create=true the file need not exist yet. */
    filename = nbdkit_absolute_path (value);
    return filename ? 0 : -1;
  }
  if (strcmp (key, "layer-only") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    layer_only = r;
    return 0;
  }
  if (strcmp (key, "inject-error") == 0)
    return parse_inject_error (value);
  if (strcmp (key, "has-backing") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    has_backing = r;
    return 0;
  }
  if (strcmp (key, "compress") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    compress_writes = r;
    return 0;
  }
  if (strcmp (key, "compress-level") == 0) {
    if (nbdkit_parse_int ("compress-level", value, &compress_level) == -1)
      return -1;
    if (compress_level == 0) {
      nbdkit_error ("compress-level must not be 0");
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "l2-cache-size") == 0) {
    l2_cache_size = nbdkit_parse_size (value);
    if (l2_cache_size == -1)
      return -1;
    if (l2_cache_size == 0) {
      nbdkit_error ("l2-cache-size must be greater than 0");
      return -1;
    }
    return 0;
  }
  nbdkit_error ("unknown parameter '%s'", key);
  return -1;
}

static int
qcx_config_complete (void)
{
  if (filename == NULL) {
    nbdkit_error ("you must supply the file=<IMAGE> parameter");
    return -1;
  }
  return create_config_complete ();
}

#define qcx_config_help \
  "[file=]<IMAGE>         (required) The qcow2 image to serve.\n" \
  "layer-only=true        Serve this layer alone even if it has a backing\n" \
  "                       file (unallocated regions read as zeros).\n" \
  "inject-error=OP:NTH:ERRNO[:persistent]  Make the NTH write, sync or\n" \
  "                       truncate of the file fail (testing only).\n" \
  "has-backing=true|false Override whether unallocated space defers to a\n" \
  "                       backing file (set by the qcow2xchain filter).\n" \
  "compress=true          Store whole-cluster writes compressed (with the\n" \
  "                       image's compression type) where possible.\n" \
  "compress-level=<N>     Compression level for compress=true (default:\n" \
  "                       QEMU's: zlib 6, zstd 3).\n" \
  "l2-cache-size=<SIZE>   Bytes of L2 tables to cache (default: enough\n" \
  "                       to map 256 GiB with 64 KiB clusters).\n" \
  create_config_help_text

/* Warnings are not errors: print them the way nbdkit prints its own
 * messages, without the "error:" tag.
 */
static void qcx_warning (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

static void
qcx_warning (const char *fmt, ...)
{
  va_list ap;

  fputs ("nbdkit: qcow2x: warning: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

/* Say why an image that could have been written is served read-only. */
static void
warn_readonly (const struct qcow2_image *img)
{
  qcx_warning ("%s: serving it read-only (%s)", filename,
               img->readonly_reason);
}

static int
check_backing (const struct qcow2_image *img)
{
  const struct qcow2_header *h = &img->header;

  if (!qcow2_image_has_backing (img) || layer_only)
    return 0;
  if (h->backing_file == NULL) {
    nbdkit_error ("has-backing=true needs layer-only=true (the plugin "
                  "alone cannot read a backing file)");
    return -1;
  }
  nbdkit_error ("%s has a backing file '%s'%s%s%s: serve the chain with "
                "--filter=qcow2xchain, or this layer alone with "
                "layer-only=true", filename, h->backing_file,
                h->backing_format ? " (format " : "",
                h->backing_format ? h->backing_format : "",
                h->backing_format ? ")" : "");
  return -1;
}

static int
qcx_get_ready (void)
{
  /* Opened writable where possible: nbdkit -r stops writes per
   * connection, and nothing on disk changes before the first write.
   */
  struct qcow2_open_options opts = {
    .readonly = false,
    .l2_cache_bytes = l2_cache_size,
    .has_backing = has_backing,
    .compress_writes = compress_writes,
    .compress_level = compress_level,
  };
  struct qcx_err err = { 0 };
  const struct qcow2_header *h;

  if (create_image_if_requested (filename) == -1)
    return -1;
  if (qcow2_image_open (filename, &opts, &image, &err) == -1) {
    nbdkit_error ("%s: %s", filename, err.msg);
    return -1;
  }
  h = &image->header;
  if (check_backing (image) == -1)
    return -1;
  if (inject.set)
    qcx_io_inject_fault (&image->io, inject.op, inject.nth, inject.errnum,
                         inject.persistent);
  if (image->readonly_reason)
    warn_readonly (image);
  if (h->has_bitmaps_ext)
    nbdkit_debug ("image has %" PRIu32 " persistent bitmap(s): ignored",
                  h->nb_bitmaps);
  nbdkit_debug ("qcow2 v%" PRIu32 ", cluster size %" PRIu64 ", %s L2 "
                "entries, refcount bits %u, %s compression, virtual size %"
                PRIu64 ", L2 cache %zu tables",
                h->version, h->cluster_size,
                h->extended_l2 ? "extended" : "standard",
                1u << h->refcount_order,
                h->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
                h->size, image->l2_tables.capacity);
  return 0;
}

static void *
qcx_open (int readonly)
{
  struct qcx_err err = { 0 };
  bool became_readonly;

  /* The first client that may write triggers the consistency walk
   * (common/check.h); with nbdkit -r it never runs.
   */
  if (!readonly) {
    if (qcow2_image_prepare_writable (image, &became_readonly, &err) == -1) {
      nbdkit_error ("%s: %s", filename, err.msg);
      return NULL;
    }
    if (became_readonly)
      warn_readonly (image);
    else if (image->refcounts_repaired)
      nbdkit_debug ("%s: dirty image: %" PRIu64 " refcounts repaired",
                    filename, image->refcounts_repaired);
  }
  /* All state is per image; a non-NULL handle is all nbdkit needs. */
  return image;
}

static int64_t
qcx_get_size (void *handle)
{
  return qcow2_image_size (handle);
}

static int
qcx_block_size (void *handle,
                uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  struct qcow2_image *img = handle;
  uint64_t unit = img->header.subcluster_size;

  *minimum = 1;
  /* The allocation unit (design.md §2): a subcluster with extended L2
   * entries, else a cluster (512 B to 2 MiB, within NBD's limits).
   */
  *preferred = unit;
  *maximum = 0xffffffff;
  return 0;
}

static int
qcx_can_write (void *handle)
{
  struct qcow2_image *img = handle;
  return !img->readonly;
}

static int
qcx_can_flush (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_fua (void *handle)
{
  (void) handle;
  return NBDKIT_FUA_NATIVE;
}

static int
qcx_can_zero (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_fast_zero (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_trim (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_multi_conn (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_extents (void *handle)
{
  (void) handle;
  return 1;
}

static int
qcx_can_cache (void *handle)
{
  (void) handle;
  return NBDKIT_CACHE_EMULATE;
}

static int
report (const struct qcx_err *err)
{
  nbdkit_error ("%s", err->msg);
  errno = err->errnum ? err->errnum : EIO;
  return -1;
}

static int
qcx_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
           uint32_t flags)
{
  struct qcx_err err;

  qcx_err_clear (&err);
  (void) flags;
  if (qcow2_image_read (handle, buf, count, offset, &err) == -1)
    return report (&err);
  return 0;
}

static int
qcx_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  struct qcx_err err;
  unsigned f = (flags & NBDKIT_FLAG_FUA) ? QCOW2_WRITE_FUA : 0;

  qcx_err_clear (&err);
  if (qcow2_image_write (handle, buf, count, offset, f, &err) == -1)
    return report (&err);
  return 0;
}

static int
qcx_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct qcx_err err;
  enum qcow2_zero_mode mode = (flags & NBDKIT_FLAG_MAY_TRIM)
    ? QCOW2_ZERO_MAY_TRIM : QCOW2_ZERO_KEEP;
  unsigned f = ((flags & NBDKIT_FLAG_FUA) ? QCOW2_WRITE_FUA : 0) |
    ((flags & NBDKIT_FLAG_FAST_ZERO) ? QCOW2_ZERO_FAST : 0);

  qcx_err_clear (&err);
  if (qcow2_image_zero (handle, count, offset, mode, f, &err) == -1) {
    /* A fast zero that cannot be fast is not worth a log line. */
    if (err.errnum == ENOTSUP && (flags & NBDKIT_FLAG_FAST_ZERO)) {
      errno = ENOTSUP;
      return -1;
    }
    return report (&err);
  }
  return 0;
}

static int
qcx_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct qcx_err err;
  unsigned f = (flags & NBDKIT_FLAG_FUA) ? QCOW2_WRITE_FUA : 0;

  qcx_err_clear (&err);
  if (qcow2_image_zero (handle, count, offset, QCOW2_TRIM, f, &err) == -1)
    return report (&err);
  return 0;
}

static int
qcx_flush (void *handle, uint32_t flags)
{
  struct qcx_err err;

  qcx_err_clear (&err);
  (void) flags;
  if (qcow2_image_flush (handle, &err) == -1)
    return report (&err);
  return 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, unsigned flags)
{
  return nbdkit_add_extent (opaque, offset, length, flags);
}

static int
qcx_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
             struct nbdkit_extents *extents)
{
  struct qcx_err err;
  /* REQ_ONE: the first extent is enough; otherwise bound the work per
   * request (the client asks again from where we stopped).
   */
  unsigned max_calls = (flags & NBDKIT_FLAG_REQ_ONE) ? 1 : 65536;

  qcx_err_clear (&err);
  if (qcow2_image_extents (handle, offset, count, max_calls, add_extent,
                           extents, &err) == -1)
    return report (&err);
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name              = "qcow2x",
  .longname          = "nbdkit qcow2 plugin with extended L2 entries",
  .version           = "0.1",
  .unload            = qcx_unload,
  .config            = qcx_config,
  .config_complete   = qcx_config_complete,
  .config_help       = qcx_config_help,
  .magic_config_key  = "file",
  .get_ready         = qcx_get_ready,
  .open              = qcx_open,
  .get_size          = qcx_get_size,
  .block_size        = qcx_block_size,
  .can_write         = qcx_can_write,
  .can_flush         = qcx_can_flush,
  .can_fua           = qcx_can_fua,
  .can_zero          = qcx_can_zero,
  .can_fast_zero     = qcx_can_fast_zero,
  .can_trim          = qcx_can_trim,
  .can_multi_conn    = qcx_can_multi_conn,
  .can_extents       = qcx_can_extents,
  .can_cache         = qcx_can_cache,
  .pread             = qcx_pread,
  .pwrite            = qcx_pwrite,
  .zero              = qcx_zero,
  .trim              = qcx_trim,
  .flush             = qcx_flush,
  .extents           = qcx_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)

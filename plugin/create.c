/* nbdkit-qcow2x-plugin: image creation parameters (see create.h).
 *
 * Parameters (spelled like qemu-img create -o where one exists):
 *   create=true            create the image at start-up
 *   size=SIZE              virtual size (required with create=true)
 *   cluster-size=SIZE      512 .. 2M, power of two (default 64K)
 *   extended-l2=BOOL       default: on when the image can have it
 *                          (compat=1.1 and cluster-size >= 16K)
 *   compression=zlib|zstd  default zlib
 *   backing=FILE           backing file name, stored as given
 *   backing-format=qcow2|raw   required with backing= (like qemu-img -F)
 *   preallocation=off|metadata|falloc|full
 *   refcount-bits=N        1, 2, 4, ..., 64 (default 16)
 *   compat=0.10|1.1        qcow2 version 2 or 3 (default 1.1)
 *   overwrite=BOOL         replace an existing file (default false)
 * The work is done by common/create.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "create.h"
#include "../common/create.h"

/* Tri-state boolean: unset, false, true. */
enum tristate { UNSET = -1, NO = 0, YES = 1 };

static struct {
  enum tristate create;
  int64_t size;                 /* -1: not given */
  uint64_t cluster_size;        /* 0: default */
  enum tristate extended_l2;
  enum qcow2_compression_type compression;
  char *backing;
  char *backing_format;
  enum qcow2_preallocation preallocation;
  unsigned refcount_bits;       /* 0: default */
  unsigned version;             /* 0: default (3) */
  bool overwrite;
  /* The first creation parameter seen, for the "needs create=true"
   * error.
   */
  const char *first_param;
} c = {
  .create = UNSET, .size = -1, .extended_l2 = UNSET,
};

static void
seen (const char *key)
{
  if (c.first_param == NULL && strcmp (key, "create") != 0)
    c.first_param = nbdkit_strdup_intern (key);
}

/* Our own boolean parser (nbdkit_parse_bool's spellings), so that the
 * error names the parameter.
 */
static int
parse_bool (const char *key, const char *value, enum tristate *out)
{
  static const char *const yes[] = { "1", "true", "yes", "on" };
  static const char *const no[] = { "0", "false", "no", "off" };

  for (unsigned i = 0; i < 4; i++) {
    if (strcasecmp (value, yes[i]) == 0) {
      *out = YES;
      return 0;
    }
    if (strcasecmp (value, no[i]) == 0) {
      *out = NO;
      return 0;
    }
  }
  nbdkit_error ("%s=%s: expected true or false", key, value);
  return -1;
}

static int
set_string (char **dst, const char *value)
{
  free (*dst);
  *dst = strdup (value);
  if (*dst == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

/* Returns 1 if KEY was handled, 0 if it is not a creation key, -1 on
 * error.
 */
static int
config_one (const char *key, const char *value)
{
  int64_t n;
  int p;
  enum tristate t;

  if (strcmp (key, "create") == 0) {
    if (parse_bool (key, value, &c.create) == -1)
      return -1;
    return 1;
  }
  if (strcmp (key, "size") == 0) {
    c.size = nbdkit_parse_size (value);
    return c.size == -1 ? -1 : 1;
  }
  if (strcmp (key, "cluster-size") == 0) {
    n = nbdkit_parse_size (value);
    if (n == -1)
      return -1;
    if (n == 0) {
      nbdkit_error ("cluster-size must not be 0");
      return -1;
    }
    c.cluster_size = n;
    return 1;
  }
  if (strcmp (key, "extended-l2") == 0)
    return parse_bool (key, value, &c.extended_l2) == -1 ? -1 : 1;
  if (strcmp (key, "compression") == 0) {
    if (strcmp (value, "zlib") == 0)
      c.compression = QCOW2_COMPRESSION_ZLIB;
    else if (strcmp (value, "zstd") == 0)
      c.compression = QCOW2_COMPRESSION_ZSTD;
    else {
      nbdkit_error ("compression=%s: must be zlib or zstd", value);
      return -1;
    }
    return 1;
  }
  if (strcmp (key, "backing") == 0) {
    if (*value == '\0') {
      nbdkit_error ("backing= must not be empty");
      return -1;
    }
    return set_string (&c.backing, value) == -1 ? -1 : 1;
  }
  if (strcmp (key, "backing-format") == 0) {
    if (strcmp (value, "qcow2") != 0 && strcmp (value, "raw") != 0) {
      nbdkit_error ("backing-format=%s: must be qcow2 or raw", value);
      return -1;
    }
    return set_string (&c.backing_format, value) == -1 ? -1 : 1;
  }
  if (strcmp (key, "preallocation") == 0) {
    p = qcow2_preallocation_from_name (value);
    if (p == -1) {
      nbdkit_error ("preallocation=%s: must be off, metadata, falloc or "
                    "full", value);
      return -1;
    }
    c.preallocation = p;
    return 1;
  }
  if (strcmp (key, "refcount-bits") == 0) {
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul (value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v == 0 ||
        v > 1024) {
      nbdkit_error ("refcount-bits=%s: expected 1, 2, 4, 8, 16, 32 or 64",
                    value);
      return -1;
    }
    c.refcount_bits = v;
    return 1;
  }
  if (strcmp (key, "compat") == 0) {
    /* qemu-img's spellings: compat=0.10 (v2) and compat=1.1 (v3). */
    if (strcmp (value, "0.10") == 0 || strcmp (value, "v2") == 0)
      c.version = 2;
    else if (strcmp (value, "1.1") == 0 || strcmp (value, "v3") == 0)
      c.version = 3;
    else {
      nbdkit_error ("compat=%s: must be 0.10 or 1.1", value);
      return -1;
    }
    return 1;
  }
  if (strcmp (key, "overwrite") == 0) {
    if (parse_bool (key, value, &t) == -1)
      return -1;
    c.overwrite = t == YES;
    return 1;
  }
  return 0;
}

int
create_config (const char *key, const char *value)
{
  int r = config_one (key, value);

  if (r == 1)
    seen (key);
  return r;
}

/* The options for common/create.h, with the plugin's defaults. */
static void
make_options (struct qcow2_create_options *o)
{
  unsigned version = c.version ? c.version : 3;
  uint64_t cluster_size =
    c.cluster_size ? c.cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE;

  memset (o, 0, sizeof *o);
  o->size = c.size;
  o->version = version;
  o->cluster_size = cluster_size;
  /* Extended L2 entries are the default wherever the image can have
   * them; asking for them explicitly where it cannot is an error
   * (reported by common/create.c).
   */
  if (c.extended_l2 == UNSET)
    o->extended_l2 = version >= 3 &&
      cluster_size >= (1u << QCOW2_MIN_EXTL2_CLUSTER_BITS);
  else
    o->extended_l2 = c.extended_l2 == YES;
  o->compression_type = c.compression;
  o->backing_file = c.backing;
  o->backing_format = c.backing_format;
  o->preallocation = c.preallocation;
  o->refcount_bits = c.refcount_bits;
  o->overwrite = c.overwrite;
}

int
create_config_complete (void)
{
  struct qcow2_create_options o;
  struct qcow2_create_layout lo;
  struct qcx_err err = { 0 };

  if (c.create != YES) {
    if (c.first_param) {
      nbdkit_error ("%s= is an image creation parameter: it needs "
                    "create=true", c.first_param);
      return -1;
    }
    return 0;
  }
  if (c.size == -1) {
    nbdkit_error ("create=true needs size=SIZE (the virtual size of the "
                  "new image)");
    return -1;
  }
  if (c.backing && c.backing_format == NULL) {
    nbdkit_error ("backing=%s needs backing-format=qcow2 or "
                  "backing-format=raw", c.backing);
    return -1;
  }
  if (c.backing_format && c.backing == NULL) {
    nbdkit_error ("backing-format= needs backing=FILE");
    return -1;
  }

  /* Check every option now, so a bad one stops nbdkit before it
   * touches the file.
   */
  make_options (&o);
  if (qcow2_create_layout (&o, &lo, &err) == -1) {
    nbdkit_error ("create: %s", err.msg);
    return -1;
  }
  return 0;
}

int
create_image_if_requested (const char *filename)
{
  struct qcow2_create_options o;
  struct qcow2_create_layout lo;
  struct qcx_err err = { 0 };

  if (c.create != YES)
    return 0;
  make_options (&o);
  if (qcow2_create (filename, &o, &err) == -1) {
    if (err.errnum == EEXIST)
      nbdkit_error ("create: %s (add overwrite=true to replace it)",
                    err.msg);
    else
      nbdkit_error ("create: %s", err.msg);
    return -1;
  }
  if (qcow2_create_layout (&o, &lo, &err) == 0)
    nbdkit_debug ("created %s: qcow2 v%u, virtual size %" PRIu64 ", cluster "
                  "size %" PRIu64 ", %s L2 entries, refcount bits %u, %s, "
                  "preallocation=%s, %" PRIu64 " clusters in use",
                  filename, lo.version, lo.size, lo.cluster_size,
                  o.extended_l2 ? "extended" : "standard",
                  1u << lo.refcount_order,
                  o.compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
                  qcow2_preallocation_name (o.preallocation),
                  lo.total_clusters);
  return 0;
}

void
create_unload (void)
{
  free (c.backing);
  free (c.backing_format);
  c.backing = c.backing_format = NULL;
}

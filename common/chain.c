/* qcow2x common library: a backing chain, read-only (see chain.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byteorder.h"
#include "chain.h"

/* The files followed so far, top first, for error messages (the
 * resolved paths, which the chain owns or the caller passed in, so only
 * pointers are kept).
 */
struct chain_names {
  const char *path[QCOW2_CHAIN_MAX_DEPTH_LIMIT + 2];
  size_t nr;
  char text[QCX_ERR_MSG_MAX];   /* names_text's result */
};

/* Names shown at each end of a long chain: a deep chain of long paths
 * must still fit one message with its last (failing) file in it.
 */
#define NAMES_SHOWN_AT_ENDS 2

static void
names_add (struct chain_names *n, const char *path)
{
  if (n->nr < sizeof n->path / sizeof n->path[0])
    n->path[n->nr++] = path;
}

/* "top -> a -> b", or "top -> a -> ... (N more) -> y -> z". */
static const char *
names_text (struct chain_names *n)
{
  size_t len = 0, ends = NAMES_SHOWN_AT_ENDS;
  bool cut = n->nr > 2 * ends + 1;

  n->text[0] = '\0';
  for (size_t i = 0; i < n->nr && len < sizeof n->text; i++) {
    const char *sep = i ? " -> " : "";
    int w;

    if (cut && i == ends) {
      w = snprintf (n->text + len, sizeof n->text - len, " -> ... (%zu more)",
                    n->nr - 2 * ends);
      i = n->nr - ends - 1;
    }
    else
      w = snprintf (n->text + len, sizeof n->text - len, "%s%s", sep,
                    n->path[i]);
    len += w > 0 ? (size_t) w : 0;
  }
  return n->text;
}

/* NAME relative to the directory of REFERRER (as QEMU resolves backing
 * file names); absolute names stand as they are.
 */
static char *
resolve_name (const char *name, const char *referrer)
{
  char *copy, *dir, *path;

  if (name[0] == '/' || referrer == NULL)
    return strdup (name);
  copy = strdup (referrer);
  if (copy == NULL)
    return NULL;
  dir = dirname (copy);
  if (asprintf (&path, "%s/%s", dir, name) == -1)
    path = NULL;
  free (copy);
  return path;
}

struct seen_files {
  dev_t dev[QCOW2_CHAIN_MAX_DEPTH_LIMIT + 2];
  ino_t ino[QCOW2_CHAIN_MAX_DEPTH_LIMIT + 2];
  size_t nr;
};

/* Record PATH's identity; -1 if it was seen before (a loop). */
static int
remember_file (struct seen_files *seen, const char *path, struct stat *st)
{
  for (size_t i = 0; i < seen->nr; i++)
    if (seen->dev[i] == st->st_dev && seen->ino[i] == st->st_ino)
      return -1;
  (void) path;
  seen->dev[seen->nr] = st->st_dev;
  seen->ino[seen->nr] = st->st_ino;
  seen->nr++;
  return 0;
}

static int
probe_is_qcow2 (const char *path, bool *is_qcow2, struct qcx_err *err)
{
  struct qcx_io io;
  uint8_t magic[4];

  if (qcx_io_open_file (&io, path, true, err) == -1)
    return -1;
  *is_qcow2 = qcx_io_size (&io) >= 4 &&
    qcx_io_pread (&io, magic, 4, 0, "magic", err) == 0 &&
    load_be32 (magic) == QCOW2_MAGIC;
  qcx_io_close (&io);
  return 0;
}

/* The top image's backing file name and format (copies, or NULL). */
static int
top_backing (const char *top_path, char **name, char **format,
             uint64_t *cluster_size, struct stat *st, struct qcx_err *err)
{
  struct qcow2_open_options o = { .readonly = true, .has_backing = -1 };
  struct qcow2_image *top;

  *name = *format = NULL;
  if (stat (top_path, st) == -1)
    return qcx_error (err, errno, "%s: %s", top_path, qcx_strerror (errno));
  if (qcow2_image_open (top_path, &o, &top, err) == -1)
    return -1;
  if (top->header.backing_file)
    *name = strdup (top->header.backing_file);
  if (top->header.backing_format)
    *format = strdup (top->header.backing_format);
  *cluster_size = top->header.cluster_size;
  qcow2_image_close (top);
  return 0;
}

static int
open_layer (struct qcow2_chain_layer *layer, const char *path,
            const char *format, struct qcx_err *err)
{
  bool is_qcow2;

  memset (layer, 0, sizeof *layer);
  layer->raw.fd = -1;
  if (format == NULL) {
    /* No backing format extension: probe (documented in the man page). */
    if (probe_is_qcow2 (path, &is_qcow2, err) == -1)
      return -1;
  }
  else if (strcmp (format, "qcow2") == 0)
    is_qcow2 = true;
  else if (strcmp (format, "raw") == 0)
    is_qcow2 = false;
  else
    return qcx_error (err, ENOTSUP, "unsupported backing format '%s' "
                      "(qcow2 and raw are supported)", format);

  layer->path = strdup (path);
  if (layer->path == NULL)
    return qcx_error (err, errno, "strdup: %s", qcx_strerror (errno));
  if (is_qcow2) {
    struct qcow2_open_options o = { .readonly = true, .has_backing = -1 };
    layer->kind = QCOW2_LAYER_QCOW2;
    if (qcow2_image_open (path, &o, &layer->img, err) == -1)
      return -1;
    layer->size = qcow2_image_size (layer->img);
  }
  else {
    layer->kind = QCOW2_LAYER_RAW;
    if (qcx_io_open_file (&layer->raw, path, true, err) == -1)
      return -1;
    layer->size = qcx_io_size (&layer->raw);
  }
  return 0;
}

static void
close_layer (struct qcow2_chain_layer *layer)
{
  if (layer->img)
    qcow2_image_close (layer->img);
  if (layer->kind == QCOW2_LAYER_RAW)
    qcx_io_close (&layer->raw);
  free (layer->path);
}

void
qcow2_chain_close (struct qcow2_chain *chain)
{
  for (size_t i = 0; i < chain->nr; i++)
    close_layer (&chain->layers[i]);
  free (chain->layers);
  chain->layers = NULL;
  chain->nr = 0;
}

/* Open the layer that REFERRER names NAME (format FORMAT, NULL to
 * probe) and append it to the chain.
 */
static int
add_layer (struct qcow2_chain *chain, const struct qcow2_chain_options *opts,
           struct seen_files *seen, struct chain_names *names,
           const char *name, const char *format, const char *referrer,
           struct qcx_err *err)
{
  struct qcow2_chain_layer *layers, *layer;
  struct stat st;
  char *path = resolve_name (name, referrer);
  int r = -1;

  if (path == NULL)
    return qcx_error (err, ENOMEM, "out of memory");
  if (chain->nr >= opts->max_depth) {
    names_add (names, path);
    qcx_error (err, ELOOP, "backing chain is deeper than %u layers "
               "(chain-max-depth): %s", opts->max_depth, names_text (names));
    goto out;
  }
  if (stat (path, &st) == -1) {
    int e = errno;
    qcx_error (err, e, "cannot open backing file '%s': %s (chain: %s)",
               path, qcx_strerror (e), names_text (names));
    goto out;
  }
  names_add (names, path);
  if (remember_file (seen, path, &st) == -1) {
    qcx_error (err, ELOOP, "backing file loop: %s", names_text (names));
    goto out;
  }
  layers = realloc (chain->layers, (chain->nr + 1) * sizeof *layers);
  if (layers == NULL) {
    qcx_error (err, errno, "realloc: %s", qcx_strerror (errno));
    goto out;
  }
  chain->layers = layers;
  layer = &layers[chain->nr];
  if (open_layer (layer, path, format, err) == -1) {
    char msg[QCX_ERR_MSG_MAX];
    snprintf (msg, sizeof msg, "%s", err->msg);
    qcx_error (err, err->errnum, "backing file '%s': %s (chain: %s)", path,
               msg, names_text (names));
    close_layer (layer);
    goto out;
  }
  /* PATH is freed at "out": the names keep the layer's own copy. */
  names->path[names->nr - 1] = layer->path;
  chain->nr++;
  r = 0;
 out:
  free (path);
  return r;
}

int
qcow2_chain_open (struct qcow2_chain *chain,
                  const struct qcow2_chain_options *opts,
                  struct qcx_err *err)
{
  struct seen_files seen = { .nr = 0 };
  struct chain_names names = { .nr = 0 };
  char *top_name = NULL, *top_format = NULL;
  const char *name, *format, *referrer;
  struct stat st;

  memset (chain, 0, sizeof *chain);
  if (opts->max_depth > QCOW2_CHAIN_MAX_DEPTH_LIMIT)
    return qcx_error (err, EINVAL, "chain-max-depth is limited to %d",
                      QCOW2_CHAIN_MAX_DEPTH_LIMIT);
  if (top_backing (opts->top_path, &top_name, &top_format,
                   &chain->top_cluster_size, &st, err) == -1)
    return -1;
  names_add (&names, opts->top_path);
  remember_file (&seen, opts->top_path, &st);
  if (opts->backing_override) {
    /* Given on the command line: relative to the current directory. */
    name = opts->backing_override;
    format = opts->backing_override_format;
    referrer = NULL;
  }
  else {
    name = top_name;
    format = top_format;
    referrer = opts->top_path;
  }
  while (name && chain->nr < opts->max_layers) {
    const struct qcow2_chain_layer *l;
    if (add_layer (chain, opts, &seen, &names, name, format, referrer,
                   err) == -1) {
      free (top_name);
      free (top_format);
      qcow2_chain_close (chain);
      return -1;
    }
    l = &chain->layers[chain->nr - 1];
    referrer = l->path;
    name = format = NULL;
    if (l->kind == QCOW2_LAYER_QCOW2) {
      name = l->img->header.backing_file;
      format = l->img->header.backing_format;
    }
  }
  free (top_name);
  free (top_format);
  return 0;
}

/* Reads. */

int
qcow2_chain_read (struct qcow2_chain *chain, size_t first, void *buf,
                  uint64_t count, uint64_t offset, struct qcx_err *err)
{
  struct qcow2_chain_layer *l;
  uint8_t *p = buf;
  uint64_t avail;

  if (first >= chain->nr || offset >= chain->layers[first].size) {
    memset (buf, 0, count);
    return 0;
  }
  l = &chain->layers[first];
  /* Past the end of a shorter layer: zeros. */
  avail = l->size - offset < count ? l->size - offset : count;
  memset (p + avail, 0, count - avail);

  if (l->kind == QCOW2_LAYER_RAW)
    return qcx_io_pread (&l->raw, p, avail, offset, "backing file", err);

  while (avail > 0) {
    struct qcow2_run run;
    int r = 0;

    if (qcow2_map_run (l->img, offset, avail, &run, err) == -1)
      return -1;
    switch (run.type) {
    case QCOW2_SC_NORMAL:
    case QCOW2_SC_COMPRESSED:
      r = qcow2_image_read (l->img, p, run.length, offset, err);
      break;
    case QCOW2_SC_ZERO_PLAIN:
    case QCOW2_SC_ZERO_ALLOC:
      memset (p, 0, run.length);
      break;
    case QCOW2_SC_UNALLOCATED_PLAIN:
    case QCOW2_SC_UNALLOCATED_ALLOC:
      r = qcow2_chain_read (chain, first + 1, p, run.length, offset, err);
      break;
    case QCOW2_SC_INVALID:
      r = qcx_error (err, EIO, "invalid L2 entry in %s", l->path);
      break;
    }
    if (r == -1)
      return -1;
    p += run.length;
    offset += run.length;
    avail -= run.length;
  }
  return 0;
}

/* Block status, merging adjacent runs with the same flags. */

struct emitter {
  qcow2_extent_cb cb;
  void *opaque;
  uint64_t start, len;
  unsigned flags;
  bool stopped;
};

static void
emit (struct emitter *e, uint64_t offset, uint64_t len, unsigned flags)
{
  if (e->stopped || len == 0)
    return;
  if (e->len > 0 && e->flags == flags && e->start + e->len == offset) {
    e->len += len;
    return;
  }
  if (e->len > 0 && e->cb (e->opaque, e->start, e->len, e->flags) != 0) {
    e->stopped = true;
    return;
  }
  e->start = offset;
  e->len = len;
  e->flags = flags;
}

static int
raw_extents (struct qcow2_chain_layer *l, struct emitter *e, uint64_t offset,
             uint64_t end)
{
  while (offset < end && !e->stopped) {
    off_t data = lseek (l->raw.fd, offset, SEEK_DATA), hole;
    if (data == -1 || (uint64_t) data >= end) {
      emit (e, offset, end - offset, QCX_EXTENT_HOLE | QCX_EXTENT_ZERO);
      return 0;
    }
    if ((uint64_t) data > offset) {
      emit (e, offset, data - offset, QCX_EXTENT_HOLE | QCX_EXTENT_ZERO);
      offset = data;
    }
    hole = lseek (l->raw.fd, offset, SEEK_HOLE);
    if (hole == -1 || (uint64_t) hole > end)
      hole = end;
    emit (e, offset, hole - offset, 0);
    offset = hole;
  }
  return 0;
}

static int
layer_extents (struct qcow2_chain *chain, size_t first, struct emitter *e,
               uint64_t offset, uint64_t end, struct qcx_err *err)
{
  struct qcow2_chain_layer *l;
  uint64_t lend;

  if (first >= chain->nr) {
    emit (e, offset, end - offset, QCX_EXTENT_HOLE | QCX_EXTENT_ZERO);
    return 0;
  }
  l = &chain->layers[first];
  lend = end < l->size ? end : l->size;
  if (offset < lend) {
    if (l->kind == QCOW2_LAYER_RAW)
      raw_extents (l, e, offset, lend);
    else {
      while (offset < lend && !e->stopped) {
        struct qcow2_run run;
        if (qcow2_map_run (l->img, offset, lend - offset, &run, err) == -1)
          return -1;
        if (run.type == QCOW2_SC_INVALID)
          return qcx_error (err, EIO, "invalid L2 entry in %s", l->path);
        if (run.type == QCOW2_SC_UNALLOCATED_PLAIN ||
            run.type == QCOW2_SC_UNALLOCATED_ALLOC) {
          if (layer_extents (chain, first + 1, e, offset,
                             offset + run.length, err) == -1)
            return -1;
        }
        else if (run.type == QCOW2_SC_NORMAL ||
                 run.type == QCOW2_SC_COMPRESSED)
          emit (e, offset, run.length, 0);
        else
          emit (e, offset, run.length, QCX_EXTENT_HOLE | QCX_EXTENT_ZERO);
        offset += run.length;
      }
    }
    offset = lend > offset ? lend : offset;
  }
  if (offset < end)
    emit (e, offset, end - offset, QCX_EXTENT_HOLE | QCX_EXTENT_ZERO);
  return 0;
}

int
qcow2_chain_extents (struct qcow2_chain *chain, size_t first,
                     uint64_t offset, uint64_t count, qcow2_extent_cb cb,
                     void *opaque, struct qcx_err *err)
{
  struct emitter e = { cb, opaque, 0, 0, 0, false };

  if (layer_extents (chain, first, &e, offset, offset + count, err) == -1)
    return -1;
  if (!e.stopped && e.len > 0)
    cb (opaque, e.start, e.len, e.flags);
  return 0;
}

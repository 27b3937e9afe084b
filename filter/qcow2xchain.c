/* nbdkit-qcow2xchain-filter: serve a qcow2 image's whole backing chain
 * on top of the qcow2x plugin (design.md §3).
 *
 * The plugin serves the top layer and reports regions deferred to the
 * backing file as HOLE without ZERO; this filter fills those from the
 * chain (opened read-only through common/chain.h), widens writes that
 * cover copy-on-write units of deferred regions only partly, and
 * applies the discard policy.  Nothing here knows the qcow2 format
 * beyond what common/ exposes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "chain.h"
#include "rangelock.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Parameters. */
static char *top_path;
static char *backing_override;
static const char *backing_override_format;
static unsigned chain_depth = QCOW2_CHAIN_MAX_DEPTH_LIMIT;
static unsigned chain_max_depth = 64;
static enum { COW_SUBCLUSTER, COW_CLUSTER } cow_unit = COW_SUBCLUSTER;
static enum {
  DISCARD_PASSTHROUGH, DISCARD_KEEP_MAPPING, DISCARD_IGNORE
} discard_mode = DISCARD_PASSTHROUGH;

/* State shared by all connections. */
static struct qcow2_chain chain;
static struct rangelock rangelock;

/* Per connection: the copy-on-write unit. */
struct handle {
  uint32_t unit;
};

static void
chain_unload (void)
{
  qcow2_chain_close (&chain);
  rangelock_destroy (&rangelock);
  free (top_path);
  free (backing_override);
}

static int
parse_format (const char *value)
{
  if (strcmp (value, "qcow2") == 0)
    backing_override_format = "qcow2";
  else if (strcmp (value, "raw") == 0)
    backing_override_format = "raw";
  else {
    nbdkit_error ("chain-backing-format must be qcow2 or raw");
    return -1;
  }
  return 0;
}

static int
chain_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
              const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    /* The plugin must show us the top layer alone, deferred regions
     * included (qcow2x's layer-only parameter).
     */
    free (top_path);
    top_path = nbdkit_absolute_path (value);
    if (top_path == NULL || next (nxdata, key, value) == -1)
      return -1;
    return next (nxdata, "layer-only", "true");
  }
  if (strcmp (key, "chain-backing") == 0) {
    free (backing_override);
    backing_override = nbdkit_absolute_path (value);
    if (backing_override == NULL)
      return -1;
    /* The top's header may name no backing file at all. */
    return next (nxdata, "has-backing", "true");
  }
  if (strcmp (key, "chain-backing-format") == 0)
    return parse_format (value);
  if (strcmp (key, "chain-depth") == 0)
    return nbdkit_parse_unsigned ("chain-depth", value, &chain_depth);
  if (strcmp (key, "chain-max-depth") == 0) {
    if (nbdkit_parse_unsigned ("chain-max-depth", value,
                               &chain_max_depth) == -1)
      return -1;
    if (chain_max_depth > QCOW2_CHAIN_MAX_DEPTH_LIMIT) {
      nbdkit_error ("chain-max-depth must be at most %d",
                    QCOW2_CHAIN_MAX_DEPTH_LIMIT);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "cow-unit") == 0) {
    if (strcmp (value, "subcluster") == 0)
      cow_unit = COW_SUBCLUSTER;
    else if (strcmp (value, "cluster") == 0)
      cow_unit = COW_CLUSTER;
    else {
      nbdkit_error ("cow-unit must be subcluster or cluster");
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "discard") == 0) {
    if (strcmp (value, "passthrough") == 0)
      discard_mode = DISCARD_PASSTHROUGH;
    else if (strcmp (value, "keep-mapping") == 0)
      discard_mode = DISCARD_KEEP_MAPPING;
    else if (strcmp (value, "ignore") == 0)
      discard_mode = DISCARD_IGNORE;
    else {
      nbdkit_error ("discard must be passthrough, keep-mapping or ignore");
      return -1;
    }
    return 0;
  }
  return next (nxdata, key, value);
}

static int
chain_config_complete (nbdkit_next_config_complete *next,
                       nbdkit_backend *nxdata)
{
  if (top_path == NULL) {
    nbdkit_error ("qcow2xchain needs the qcow2x plugin's file=<IMAGE>");
    return -1;
  }
  if (backing_override_format && backing_override == NULL) {
    nbdkit_error ("chain-backing-format needs chain-backing");
    return -1;
  }
  rangelock_init (&rangelock);
  return next (nxdata);
}

#define chain_config_help \
  "chain-backing=<FILE>   Supply or replace the top image's backing file.\n" \
  "chain-backing-format=qcow2|raw  Its format (default: probe).\n" \
  "chain-depth=<N>        Use at most N backing layers (0: none).\n" \
  "chain-max-depth=<N>    Refuse deeper chains (default 64).\n" \
  "cow-unit=subcluster|cluster  Copy-on-write unit (default subcluster).\n" \
  "discard=passthrough|keep-mapping|ignore  Trim policy (default\n" \
  "                       passthrough)."

/* The plugin has created the image (if asked to) by now: nbdkit readies
 * the plugin before its filters.
 */
static int
chain_get_ready (int thread_model)
{
  struct qcow2_chain_options o = {
    .top_path = top_path,
    .backing_override = backing_override,
    .backing_override_format = backing_override_format,
    .max_layers = chain_depth,
    .max_depth = chain_max_depth,
  };
  struct qcx_err err = { 0 };

  (void) thread_model;
  if (qcow2_chain_open (&chain, &o, &err) == -1) {
    nbdkit_error ("%s", err.msg);
    return -1;
  }
  for (size_t i = 0; i < chain.nr; i++)
    nbdkit_debug ("backing layer %zu: %s (%s, %" PRIu64 " bytes)", i,
                  chain.layers[i].path,
                  chain.layers[i].kind == QCOW2_LAYER_RAW ? "raw" : "qcow2",
                  chain.layers[i].size);
  return 0;
}

static void *
chain_open (nbdkit_next_open *next, nbdkit_context *ctx, int readonly,
            const char *exportname, int is_tls)
{
  struct handle *h;

  (void) is_tls;
  if (next (ctx, readonly, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
chain_close (void *handle)
{
  free (handle);
}

static int
chain_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct handle *h = handle;
  uint32_t minimum, preferred, maximum;

  (void) readonly;
  if (next->block_size (next, &minimum, &preferred, &maximum) == -1)
    return -1;
  h->unit = preferred ? preferred : 512;
  if (cow_unit == COW_CLUSTER && chain.top_cluster_size > h->unit)
    h->unit = chain.top_cluster_size;
  return 0;
}

/* With cow-unit=cluster the copy-on-write unit is the cluster: say so
 * to clients, so that well-behaved ones write whole units.
 */
static int
chain_block_size (nbdkit_next *next, void *handle, uint32_t *minimum,
                  uint32_t *preferred, uint32_t *maximum)
{
  struct handle *h = handle;

  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  if (h->unit > *preferred)
    *preferred = h->unit;
  return 0;
}

static bool
is_deferred (uint32_t type)
{
  return type == NBDKIT_EXTENT_HOLE;
}

static int
report (const struct qcx_err *e, int *err)
{
  nbdkit_error ("%s", e->msg);
  *err = e->errnum ? e->errnum : EIO;
  return -1;
}

/* Reads: the plugin's own data, zeros, or the chain below. */
static int
chain_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  struct nbdkit_extents *exts;
  uint8_t *p = buf;
  uint64_t end = offset + count;
  int r = 0;

  (void) handle;
  exts = nbdkit_extents_full (next, count, offset, 0, err);
  if (exts == NULL)
    return -1;
  for (size_t i = 0; i < nbdkit_extents_count (exts) && r == 0; i++) {
    struct nbdkit_extent e = nbdkit_get_extent (exts, i);
    uint64_t s = e.offset > offset ? e.offset : offset;
    uint64_t t = e.offset + e.length < end ? e.offset + e.length : end;
    struct qcx_err qe;

    qcx_err_clear (&qe);
    if (s >= t)
      continue;
    if (is_deferred (e.type)) {
      if (qcow2_chain_read (&chain, 0, p + (s - offset), t - s, s,
                            &qe) == -1)
        r = report (&qe, err);
    }
    else if (e.type & NBDKIT_EXTENT_ZERO)
      memset (p + (s - offset), 0, t - s);
    else
      r = next->pread (next, p + (s - offset), t - s, s, flags, err);
  }
  nbdkit_extents_free (exts);
  return r;
}

/* Writes.  The request R, widened to whole units W, is written in
 * pieces: R itself plus every deferred run of W outside R, merged where
 * adjacent.  Bytes outside R come from the chain; R's bytes come from
 * the caller's buffer, or are zeros when there is none.
 */
struct piece {
  uint64_t start, end;
};

static size_t
plan_pieces (struct nbdkit_extents *exts, uint64_t ws, uint64_t we,
             uint64_t rs, uint64_t re, struct piece *pieces, size_t max)
{
  size_t n = 0;

  /* Candidate runs in order: deferred runs of W outside R, and R. */
  for (size_t i = 0; i < nbdkit_extents_count (exts); i++) {
    struct nbdkit_extent e = nbdkit_get_extent (exts, i);
    uint64_t s = e.offset > ws ? e.offset : ws;
    uint64_t t = e.offset + e.length < we ? e.offset + e.length : we;
    uint64_t parts[2][2] = { { s, t < rs ? t : rs }, { s > re ? s : re, t } };

    if (s >= t || !is_deferred (e.type))
      continue;
    for (int k = 0; k < 2; k++) {
      if (parts[k][0] >= parts[k][1])
        continue;
      if (n < max)
        pieces[n++] = (struct piece) { parts[k][0], parts[k][1] };
    }
  }
  if (n < max)
    pieces[n++] = (struct piece) { rs, re };
  /* Sort (few pieces) and merge adjacent ones. */
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && pieces[j].start < pieces[j - 1].start; j--) {
      struct piece t = pieces[j];
      pieces[j] = pieces[j - 1];
      pieces[j - 1] = t;
    }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m > 0 && pieces[m - 1].end == pieces[i].start)
      pieces[m - 1].end = pieces[i].end;
    else
      pieces[m++] = pieces[i];
  }
  return m;
}

static int
write_piece (nbdkit_next *next, const struct piece *pc, const uint8_t *buf,
             uint64_t rs, uint64_t re, uint32_t flags, int *err)
{
  uint64_t len = pc->end - pc->start;
  uint64_t cs = pc->start > rs ? pc->start : rs;   /* R within the piece */
  uint64_t ce = pc->end < re ? pc->end : re;
  struct qcx_err qe;
  uint8_t *tmp;
  int r;

  qcx_err_clear (&qe);
  /* The piece is R alone: no copy. */
  if (buf && pc->start == rs && pc->end == re)
    return next->pwrite (next, buf, len, rs, flags, err);
  tmp = malloc (len);
  if (tmp == NULL) {
    *err = errno;
    nbdkit_error ("malloc: %m");
    return -1;
  }
  r = 0;
  if (pc->start < cs)
    r = qcow2_chain_read (&chain, 0, tmp, cs - pc->start, pc->start, &qe);
  if (r == 0 && ce < pc->end)
    r = qcow2_chain_read (&chain, 0, tmp + (ce - pc->start), pc->end - ce, ce,
                          &qe);
  if (r == -1) {
    free (tmp);
    return report (&qe, err);
  }
  if (cs < ce) {
    if (buf)
      memcpy (tmp + (cs - pc->start), buf + (cs - rs), ce - cs);
    else
      memset (tmp + (cs - pc->start), 0, ce - cs);
  }
  r = next->pwrite (next, tmp, len, pc->start, flags, err);
  free (tmp);
  return r;
}

/* Write [rs, re) (BUF, or zeros if NULL), widened as described above.
 * The caller holds the range lock over [ws, we).
 */
static int
widened_write (nbdkit_next *next, const uint8_t *buf, uint64_t ws,
               uint64_t we, uint64_t rs, uint64_t re, uint32_t flags,
               int *err)
{
  struct piece pieces[64];
  struct nbdkit_extents *exts;
  size_t n;
  int r = 0;

  if (ws == rs && we == re && buf)
    return next->pwrite (next, buf, re - rs, rs, flags, err);
  exts = nbdkit_extents_full (next, we - ws, ws, 0, err);
  if (exts == NULL)
    return -1;
  n = plan_pieces (exts, ws, we, rs, re, pieces, 64);
  nbdkit_extents_free (exts);
  for (size_t i = 0; i < n && r == 0; i++)
    r = write_piece (next, &pieces[i], buf, rs, re,
                     i == n - 1 ? flags : flags & ~NBDKIT_FLAG_FUA, err);
  return r;
}

static void
unit_bounds (const struct handle *h, uint64_t size, uint64_t offset,
             uint64_t count, uint64_t *ws, uint64_t *we)
{
  *ws = offset / h->unit * h->unit;
  *we = (offset + count + h->unit - 1) / h->unit * h->unit;
  if (*we > size)
    *we = size;
}

static int
chain_pwrite (nbdkit_next *next, void *handle, const void *buf,
              uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct handle *h = handle;
  int64_t size = next->get_size (next);
  uint64_t ws, we;
  int r;

  if (size == -1)
    return -1;
  unit_bounds (h, size, offset, count, &ws, &we);
  if (rangelock_acquire (&rangelock, ws, we) == -1) {
    *err = errno;
    return -1;
  }
  r = widened_write (next, buf, ws, we, offset, offset + count, flags, err);
  rangelock_release (&rangelock, ws, we);
  return r;
}

/* Does [s, e) touch a deferred region? */
static int
touches_deferred (nbdkit_next *next, uint64_t s, uint64_t e, bool *deferred,
                  int *err)
{
  struct nbdkit_extents *exts = nbdkit_extents_full (next, e - s, s, 0, err);

  if (exts == NULL)
    return -1;
  *deferred = false;
  for (size_t i = 0; i < nbdkit_extents_count (exts); i++) {
    struct nbdkit_extent x = nbdkit_get_extent (exts, i);
    if (x.offset < e && x.offset + x.length > s && is_deferred (x.type))
      *deferred = true;
  }
  nbdkit_extents_free (exts);
  return 0;
}

enum zero_op { OP_ZERO, OP_TRIM };

static int
plugin_zero_or_trim (nbdkit_next *next, enum zero_op op, uint64_t start,
                     uint64_t end, uint32_t flags, int *err)
{
  if (op == OP_ZERO)
    return next->zero (next, end - start, start, flags, err);
  return next->trim (next, end - start, start, flags, err);
}

/* Zero or trim [offset, offset+count) so that it reads as zero.  The
 * plugin does that itself, except for a partly covered unit with
 * deferred bytes: it would zero the whole unit, so such a unit is
 * rewritten here with the chain's data around the zeros.  Everything
 * is decided before anything changes, so a FAST_ZERO that cannot be
 * fast fails without side effects.
 */
static int
zero_or_trim (nbdkit_next *next, struct handle *h, enum zero_op op,
              uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  int64_t size = next->get_size (next);
  uint64_t end = offset + count, ws, we, a, b;
  struct piece parts[2];
  bool deferred[2] = { false, false }, any_deferred = false;
  size_t nparts = 0;
  int r = 0;

  if (size == -1)
    return -1;
  unit_bounds (h, size, offset, count, &ws, &we);
  a = (offset + h->unit - 1) / h->unit * h->unit;
  b = end == (uint64_t) size ? end : end / h->unit * h->unit;
  if (a >= b) {
    parts[nparts++] = (struct piece) { offset, end };
    a = b = end;
  }
  else {
    if (offset < a)
      parts[nparts++] = (struct piece) { offset, a };
    if (b < end)
      parts[nparts++] = (struct piece) { b, end };
  }
  if (rangelock_acquire (&rangelock, ws, we) == -1) {
    *err = errno;
    return -1;
  }
  for (size_t i = 0; i < nparts && r == 0; i++) {
    uint64_t us, ue;
    unit_bounds (h, size, parts[i].start, parts[i].end - parts[i].start,
                 &us, &ue);
    r = touches_deferred (next, us, ue, &deferred[i], err);
    any_deferred |= deferred[i];
  }
  if (r == 0 && any_deferred && (flags & NBDKIT_FLAG_FAST_ZERO)) {
    *err = ENOTSUP;
    r = -1;
  }
  else if (r == 0 && !any_deferred)
    r = plugin_zero_or_trim (next, op, offset, end, flags, err);
  else {
    for (size_t i = 0; i < nparts && r == 0; i++) {
      uint64_t us, ue;
      unit_bounds (h, size, parts[i].start, parts[i].end - parts[i].start,
                   &us, &ue);
      if (deferred[i])
        r = widened_write (next, NULL, us, ue, parts[i].start, parts[i].end,
                           flags & NBDKIT_FLAG_FUA, err);
      else
        r = plugin_zero_or_trim (next, op, parts[i].start, parts[i].end,
                                 flags, err);
    }
    if (r == 0 && a < b)
      r = plugin_zero_or_trim (next, op, a, b, flags, err);
  }
  rangelock_release (&rangelock, ws, we);
  return r;
}

static int
chain_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  /* keep-mapping: never let a zero release host clusters. */
  if (discard_mode == DISCARD_KEEP_MAPPING)
    flags &= ~NBDKIT_FLAG_MAY_TRIM;
  return zero_or_trim (next, handle, OP_ZERO, count, offset, flags, err);
}

static int
chain_trim (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  switch (discard_mode) {
  case DISCARD_IGNORE:
    return 0;
  case DISCARD_KEEP_MAPPING:
    return zero_or_trim (next, handle, OP_ZERO, count, offset,
                         flags & NBDKIT_FLAG_FUA, err);
  case DISCARD_PASSTHROUGH:
    break;
  }
  return zero_or_trim (next, handle, OP_TRIM, count, offset, flags, err);
}

static int
chain_can_trim (nbdkit_next *next, void *handle)
{
  (void) handle;
  if (discard_mode == DISCARD_IGNORE)
    return 1;
  return next->can_trim (next);
}

struct add_ctx {
  struct nbdkit_extents *out;
};

static int
add_chain_extent (void *opaque, uint64_t offset, uint64_t length,
                  unsigned flags)
{
  struct add_ctx *c = opaque;
  return nbdkit_add_extent (c->out, offset, length, flags);
}

/* Extents: the plugin's, with deferred runs replaced by the chain's. */
static int
chain_extents (nbdkit_next *next, void *handle, uint32_t count,
               uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents, int *err)
{
  struct nbdkit_extents *top;
  struct add_ctx ctx = { extents };
  int r = 0;

  (void) handle;
  top = nbdkit_extents_new (offset, next->get_size (next));
  if (top == NULL) {
    *err = errno;
    return -1;
  }
  if (next->extents (next, count, offset, flags & ~NBDKIT_FLAG_REQ_ONE, top,
                     err) == -1) {
    nbdkit_extents_free (top);
    return -1;
  }
  for (size_t i = 0; i < nbdkit_extents_count (top) && r == 0; i++) {
    struct nbdkit_extent e = nbdkit_get_extent (top, i);
    struct qcx_err qe;

    qcx_err_clear (&qe);
    if (!is_deferred (e.type))
      r = nbdkit_add_extent (extents, e.offset, e.length, e.type);
    else if (qcow2_chain_extents (&chain, 0, e.offset, e.length,
                                  add_chain_extent, &ctx, &qe) == -1)
      r = report (&qe, err);
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  nbdkit_extents_free (top);
  return r;
}

static struct nbdkit_filter filter = {
  .name              = "qcow2xchain",
  .longname          = "nbdkit qcow2 backing chain filter",
  .unload            = chain_unload,
  .config            = chain_config,
  .config_complete   = chain_config_complete,
  .config_help       = chain_config_help,
  .get_ready         = chain_get_ready,
  .open              = chain_open,
  .close             = chain_close,
  .prepare           = chain_prepare,
  .block_size        = chain_block_size,
  .pread             = chain_pread,
  .pwrite            = chain_pwrite,
  .zero              = chain_zero,
  .trim              = chain_trim,
  .can_trim          = chain_can_trim,
  .extents           = chain_extents,
};

NBDKIT_REGISTER_FILTER (filter)

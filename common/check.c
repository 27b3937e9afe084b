/* qcow2x common library: metadata consistency check (see check.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "bitmaps.h"
#include "check.h"
#include "image.h"

/* What a host cluster is used for, as far as the walk has seen. */
enum use { USE_NONE = 0, USE_METADATA, USE_DATA, USE_COMPRESSED };

/* Uses are kept 2 bits per host cluster, for clusters up to the
 * highest one referenced (not the file size: a sparse file can be far
 * larger than what its metadata uses).
 */
struct walk {
  struct qcow2_image *img;
  uint8_t *use;                 /* 4 clusters per byte */
  uint16_t *count;              /* references per cluster, or NULL */
  uint64_t cap;                 /* clusters `use` (and `count`) can hold */
  uint64_t nr_clusters;         /* clusters in the file */
  char *problem;
  size_t problem_len;
  struct qcx_err *err;          /* set on allocation failure */
  bool failed;
};

static enum use
get_use (const struct walk *w, uint64_t c)
{
  if (c >= w->cap)
    return USE_NONE;
  return (w->use[c / 4] >> (2 * (c % 4))) & 3;
}

static void
set_use (struct walk *w, uint64_t c, enum use u)
{
  w->use[c / 4] = (w->use[c / 4] & ~(3 << (2 * (c % 4)))) | (u << (2 * (c % 4)));
}

static void report (struct walk *w, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static bool
reserve (struct walk *w, uint64_t clusters)
{
  uint64_t cap = w->cap ? w->cap : 4096;
  uint8_t *p;

  if (clusters <= w->cap)
    return true;
  if (w->count && clusters > QCOW2_REPAIR_MAX_CLUSTERS) {
    report (w, "the image is too large to count its references "
            "(host cluster 0x%" PRIx64 " is past the first %llu)",
            (clusters - 1) * w->img->header.cluster_size,
            QCOW2_REPAIR_MAX_CLUSTERS);
    return false;
  }
  while (cap < clusters)
    cap *= 2;
  p = realloc (w->use, cap / 4);
  if (p == NULL)
    goto nomem;
  memset (p + w->cap / 4, 0, (cap - w->cap) / 4);
  w->use = p;
  if (w->count) {
    uint16_t *n = realloc (w->count, cap * sizeof *n);
    if (n == NULL)
      goto nomem;
    memset (n + w->cap, 0, (cap - w->cap) * sizeof *n);
    w->count = n;
  }
  w->cap = cap;
  return true;

 nomem:
  qcx_error (w->err, ENOMEM, "out of memory for the metadata walk");
  w->failed = true;
  return false;
}

static bool
found_problem (const struct walk *w)
{
  return w->problem[0] != '\0' || w->failed;
}

static void
report (struct walk *w, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
report (struct walk *w, const char *fmt, ...)
{
  va_list ap;

  if (found_problem (w))
    return;
  va_start (ap, fmt);
  vsnprintf (w->problem, w->problem_len, fmt, ap);
  va_end (ap);
}

/* Record that [offset, offset+len) is used as USE by WHAT.  Metadata and
 * data clusters may not be shared with anything; compressed data may
 * share host clusters with other compressed data only.
 */
static void
claim (struct walk *w, uint64_t offset, uint64_t len, enum use use,
       const char *what)
{
  uint64_t cs = w->img->header.cluster_size;
  uint64_t first = offset / cs, last = (offset + len - 1) / cs;

  if (len == 0 || found_problem (w))
    return;
  if (last >= w->nr_clusters) {
    report (w, "%s at offset 0x%" PRIx64 " is beyond the end of the file",
            what, offset);
    return;
  }
  if (!reserve (w, last + 1))
    return;
  for (uint64_t c = first; c <= last; c++) {
    enum use old = get_use (w, c);
    if (old == USE_NONE || (old == USE_COMPRESSED && use == USE_COMPRESSED)) {
      set_use (w, c, use);
      /* Each compressed descriptor counts once in every host cluster
       * it touches, as QEMU counts them.
       */
      if (w->count && w->count[c] < UINT16_MAX)
        w->count[c]++;
      continue;
    }
    report (w, "%s at offset 0x%" PRIx64 " overlaps other metadata or data "
            "(host cluster 0x%" PRIx64 " is used twice)", what, offset,
            c * cs);
    return;
  }
}

static int
walk_l2_table (struct walk *w, uint64_t l1_index, uint64_t l2_offset,
               uint8_t *table, struct qcx_err *err)
{
  const struct qcow2_header *h = &w->img->header;

  if (qcx_io_pread (&w->img->io, table, h->cluster_size, l2_offset,
                    "L2 table", err) == -1)
    return -1;
  for (uint64_t i = 0; i < h->l2_entries && !found_problem (w); i++) {
    const uint8_t *e = table + i * h->l2_entry_size;
    uint64_t entry = load_be64 (e);
    uint64_t bitmap = h->extended_l2 ? load_be64 (e + 8) : 0;
    enum qcow2_subcluster_type t =
      qcow2_classify_subcluster (&w->img->geom, entry, bitmap, 0);
    uint64_t guest = ((l1_index << h->l2_bits) + i) << h->cluster_bits;

    /* Any subcluster decides validity and whether a host cluster is
     * referenced; classify each only to catch invalid combinations.
     */
    for (unsigned sc = 1; sc < h->subclusters && t != QCOW2_SC_INVALID; sc++)
      if (qcow2_classify_subcluster (&w->img->geom, entry, bitmap, sc) ==
          QCOW2_SC_INVALID)
        t = QCOW2_SC_INVALID;
    switch (t) {
    case QCOW2_SC_INVALID:
      report (w, "invalid L2 entry 0x%016" PRIx64 " for guest offset 0x%"
              PRIx64, entry, guest);
      break;
    case QCOW2_SC_COMPRESSED: {
      struct qcow2_compressed_desc d;
      qcow2_decode_compressed (&w->img->geom, entry, &d);
      claim (w, d.host_offset & ~511ULL, d.max_bytes + (d.host_offset & 511),
             USE_COMPRESSED, "compressed cluster");
      break;
    }
    default:
      if (qcow2_l2_host_offset (entry))
        claim (w, qcow2_l2_host_offset (entry), h->cluster_size, USE_DATA,
               "data cluster");
      break;
    }
  }
  return 0;
}

static void
claim_bitmap_range (void *opaque, uint64_t offset, uint64_t len,
                    const char *what)
{
  claim (opaque, offset, len, USE_METADATA, what);
}

static int
walk_tables (struct walk *w, struct qcx_err *err)
{
  struct qcow2_image *img = w->img;
  const struct qcow2_header *h = &img->header;
  const struct qcow2_refcounts *rc = &img->refcounts;
  uint8_t *table;
  int r = 0;

  claim (w, 0, h->cluster_size, USE_METADATA, "header");
  claim (w, rc->table_offset, (uint64_t) rc->table_clusters * h->cluster_size,
         USE_METADATA, "refcount table");
  for (uint64_t i = 0; i < rc->table_entries; i++)
    if (rc->table[i])
      claim (w, rc->table[i], h->cluster_size, USE_METADATA,
             "refcount block");
  if (h->l1_size)
    claim (w, h->l1_table_offset, (uint64_t) h->l1_size * 8, USE_METADATA,
           "L1 table");
  /* Persistent bitmaps: their tables and data clusters are counted
   * too, and must not be handed out (qemu-img check counts them).
   */
  if (qcow2_bitmaps_walk (img, claim_bitmap_range, w, err) == -1)
    return -1;

  table = malloc (h->cluster_size);
  if (table == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
  for (uint32_t i = 0; i < h->l1_size && !found_problem (w) && r == 0; i++) {
    uint64_t l2 = img->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (l2 == 0)
      continue;
    if (l2 & (h->cluster_size - 1)) {
      report (w, "L2 table offset 0x%" PRIx64 " is not aligned", l2);
      break;
    }
    claim (w, l2, h->cluster_size, USE_METADATA, "L2 table");
    if (!found_problem (w))
      r = walk_l2_table (w, i, l2, table, err);
  }
  free (table);
  return r;
}

/* Every referenced cluster must be counted. */
static int
compare_refcounts (struct walk *w, struct qcx_err *err)
{
  uint64_t cs = w->img->header.cluster_size;

  for (uint64_t c = 0; c < w->cap && !found_problem (w); c++) {
    uint64_t v;
    if (c % 4 == 0 && w->use[c / 4] == 0) {
      c += 3;
      continue;
    }
    if (get_use (w, c) == USE_NONE)
      continue;
    if (qcow2_refcount_get (w->img, c, &v, err) == -1)
      return -1;
    if (v == 0)
      report (w, "host cluster 0x%" PRIx64 " is in use but its refcount is "
              "0", c * cs);
  }
  return 0;
}

/* Walk every reference of IMG (counting them too if W->count is set). */
static int
run_walk (struct walk *w)
{
  uint64_t cs = w->img->header.cluster_size;

  w->problem[0] = '\0';
  w->nr_clusters = (qcx_io_size (&w->img->io) + cs - 1) / cs;
  return walk_tables (w, w->err);
}

int
qcow2_check_for_write (struct qcow2_image *img, char *problem,
                       size_t problem_len, struct qcx_err *err)
{
  struct walk w = { .img = img, .problem = problem,
                    .problem_len = problem_len, .err = err };
  int r;

  r = run_walk (&w);
  if (r == 0 && !w.failed)
    r = compare_refcounts (&w, err);
  free (w.use);
  return w.failed ? -1 : r;
}

int
qcow2_count_references (struct qcow2_image *img, char *problem,
                        size_t problem_len, uint16_t **counts,
                        uint64_t *nr_counts, struct qcx_err *err)
{
  struct walk w = { .img = img, .problem = problem,
                    .problem_len = problem_len, .err = err };
  int r;

  *counts = NULL;
  *nr_counts = 0;
  w.count = calloc (1, sizeof *w.count);       /* grown by reserve */
  if (w.count == NULL)
    return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
  r = run_walk (&w);
  free (w.use);
  if (r == -1 || w.failed || problem[0]) {
    free (w.count);
    return w.failed ? -1 : r;
  }
  *counts = w.count;
  *nr_counts = w.cap;
  return 0;
}

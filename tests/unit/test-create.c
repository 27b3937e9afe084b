/* Unit test of image creation (common/create.c) without nbdkit or QEMU:
 * layout invariants over a grid of options (every used cluster is
 * covered by a refcount block, the refcount table holds every block,
 * the structures follow one another, preallocated data ends the file),
 * rejection of bad options, and a round trip through the header parser
 * (common/header.c) of images written to a scratch directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "create.h"
#include "header.h"
#include "io.h"

static int failures;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
               #cond);                                                  \
      failures++;                                                       \
    }                                                                   \
  } while (0)

static uint64_t
div_round_up (uint64_t a, uint64_t b)
{
  return (a + b - 1) / b;
}

static void
check_layout (const struct qcow2_create_options *o,
              const struct qcow2_create_layout *lo)
{
  uint64_t cs = lo->cluster_size;
  uint64_t per_block = cs * 8 >> lo->refcount_order;
  uint64_t guest_clusters = div_round_up (lo->size, cs);

  CHECK (lo->size % 512 == 0 && lo->size >= o->size && lo->size - o->size < 512);
  CHECK (lo->l1_size == div_round_up (guest_clusters, lo->l2_entries));
  CHECK (lo->l1_clusters == div_round_up ((uint64_t) lo->l1_size * 8, cs));
  /* Refcount blocks cover every used cluster, and no more blocks than
   * needed for the blocks' own fixed point.
   */
  CHECK (lo->refblocks * per_block >= lo->total_clusters);
  CHECK ((lo->refblocks - 1) * per_block < lo->total_clusters);
  CHECK (lo->reftable_clusters * (cs / 8) >= lo->refblocks);
  CHECK ((lo->reftable_clusters - 1) * (cs / 8) < lo->refblocks);
  /* One after the other, in QEMU's order. */
  CHECK (lo->reftable_offset == cs);
  CHECK (lo->refblocks_offset == lo->reftable_offset + lo->reftable_clusters * cs);
  CHECK (lo->l1_size == 0 ||
         lo->l1_offset == lo->refblocks_offset + lo->refblocks * cs);
  CHECK (lo->data_offset == lo->l2_offset + lo->l2_tables * cs);
  CHECK (lo->file_size == lo->total_clusters * cs);
  CHECK (lo->data_offset + lo->data_clusters * cs == lo->file_size);
  if (o->preallocation == QCOW2_PREALLOC_OFF)
    CHECK (lo->l2_tables == 0 && lo->data_clusters == 0);
  else {
    CHECK (lo->l2_tables == lo->l1_size);
    CHECK (lo->data_clusters == guest_clusters);
  }
}

static void
test_layout_grid (void)
{
  static const uint64_t sizes[] = {
    0, 1, 1000, 65536, 100001, 5 << 20, 1ULL << 30, 1ULL << 40,
  };
  unsigned n = 0;

  for (unsigned cb = 9; cb <= 21; cb++)
    for (unsigned order = 0; order <= 6; order++)
      for (unsigned ext = 0; ext <= 1; ext++)
        for (unsigned p = 0; p <= QCOW2_PREALLOC_FULL; p++)
          for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            struct qcow2_create_options o = {
              .size = sizes[s], .cluster_size = 1ULL << cb,
              .extended_l2 = ext, .preallocation = p,
              .refcount_bits = 1u << order,
            };
            struct qcow2_create_layout lo;
            struct qcx_err err = { 0 };
            int r = qcow2_create_layout (&o, &lo, &err);

            if (ext && cb < 14) {
              CHECK (r == -1 && err.errnum == EINVAL);
              continue;
            }
            if (r == -1) {
              /* Only limits may refuse: L1 or refcount table too big. */
              CHECK (strstr (err.msg, "L1 table") ||
                     strstr (err.msg, "refcount table"));
              continue;
            }
            check_layout (&o, &lo);
            n++;
          }
  CHECK (n > 1000);
}

static void
test_bad_options (void)
{
  struct qcow2_create_layout lo;
  struct qcx_err err;
  struct qcow2_create_options base = { .size = 1 << 20 }, o;

#define BAD(field, value, phrase)                                       \
  do {                                                                  \
    o = base;                                                           \
    o.field = value;                                                    \
    memset (&err, 0, sizeof err);                                       \
    CHECK (qcow2_create_layout (&o, &lo, &err) == -1);                  \
    CHECK (err.errnum == EINVAL);                                       \
    CHECK (strstr (err.msg, phrase) != NULL);                           \
  } while (0)

  BAD (cluster_size, 1000, "cluster size");
  BAD (cluster_size, 256, "cluster size");
  BAD (cluster_size, 4 << 20, "cluster size");
  BAD (refcount_bits, 3, "refcount bits");
  BAD (refcount_bits, 128, "refcount bits");
  BAD (version, 4, "version");
  BAD (backing_format, "raw", "without a backing file");
  o = base;
  o.extended_l2 = true;
  o.cluster_size = 4096;
  CHECK (qcow2_create_layout (&o, &lo, &err) == -1);
  CHECK (strstr (err.msg, "16K") != NULL);
  o = base;
  o.version = 2;
  o.refcount_bits = 64;
  CHECK (qcow2_create_layout (&o, &lo, &err) == -1);
  o = base;
  o.version = 2;
  o.compression_type = QCOW2_COMPRESSION_ZSTD;
  CHECK (qcow2_create_layout (&o, &lo, &err) == -1);
  o = base;
  o.backing_file = "b";
  o.preallocation = QCOW2_PREALLOC_METADATA;
  CHECK (qcow2_create_layout (&o, &lo, &err) == -1);
  CHECK (strstr (err.msg, "extended L2") != NULL);
  o.extended_l2 = true;
  CHECK (qcow2_create_layout (&o, &lo, &err) == 0);
#undef BAD
}

/* Create PATH with O and parse it back. */
static void
round_trip (const char *dir, const struct qcow2_create_options *o,
            unsigned want_version, unsigned want_order)
{
  char path[4096];
  struct qcx_err err = { 0 };
  struct qcx_io io;
  struct qcow2_header h;
  uint64_t cs = o->cluster_size ? o->cluster_size : 65536;

  snprintf (path, sizeof path, "%s/img.qcow2", dir);
  unlink (path);
  if (qcow2_create (path, o, &err) == -1) {
    fprintf (stderr, "qcow2_create: %s\n", err.msg);
    failures++;
    return;
  }
  CHECK (qcx_io_open_file (&io, path, true, &err) == 0);
  if (qcow2_header_parse (&io, &h, &err) == -1) {
    fprintf (stderr, "qcow2_header_parse: %s\n", err.msg);
    failures++;
    qcx_io_close (&io);
    return;
  }
  CHECK (h.version == want_version);
  CHECK (h.cluster_size == cs);
  CHECK (h.size == (o->size + 511) / 512 * 512);
  CHECK (h.extended_l2 == o->extended_l2);
  CHECK (h.refcount_order == want_order);
  CHECK (h.compression_type == o->compression_type);
  CHECK ((h.backing_file == NULL) == (o->backing_file == NULL));
  if (o->backing_file && h.backing_file)
    CHECK (strcmp (h.backing_file, o->backing_file) == 0);
  if (o->backing_format && h.backing_format)
    CHECK (strcmp (h.backing_format, o->backing_format) == 0);
  /* The feature name table, like QEMU: v3 and clusters above 4K. */
  if (want_version == 3 && cs > 4096) {
    CHECK (h.nr_feature_names == 8);
    CHECK (qcow2_feature_name (&h, 0, 4) &&
           strcmp (qcow2_feature_name (&h, 0, 4), "extended L2 entries") == 0);
  }
  else
    CHECK (h.nr_feature_names == 0);
  CHECK (h.incompatible_features ==
         ((o->extended_l2 ? QCOW2_INCOMPAT_EXTL2 : 0) |
          (o->compression_type ? QCOW2_INCOMPAT_COMPRESSION : 0)));
  qcow2_header_free (&h);
  qcx_io_close (&io);
}

static void
test_files (void)
{
  char dir[] = "/tmp/qcx-test-create.XXXXXX";
  char path[4096], base[4096];
  struct qcx_err err = { 0 };
  struct stat st;
  int fd;

  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    failures++;
    return;
  }
  snprintf (base, sizeof base, "%s/base.raw", dir);
  fd = open (base, O_WRONLY | O_CREAT, 0644);
  CHECK (fd >= 0 && ftruncate (fd, 1 << 20) == 0);
  close (fd);

  round_trip (dir, &(struct qcow2_create_options) { .size = 10 << 20 },
              3, 4);
  round_trip (dir, &(struct qcow2_create_options) {
      .size = 1000, .cluster_size = 512, .refcount_bits = 1 }, 3, 0);
  round_trip (dir, &(struct qcow2_create_options) {
      .size = 3 << 20, .extended_l2 = true,
      .compression_type = QCOW2_COMPRESSION_ZSTD, .refcount_bits = 64,
      .preallocation = QCOW2_PREALLOC_METADATA }, 3, 6);
  round_trip (dir, &(struct qcow2_create_options) {
      .size = 3 << 20, .version = 2, .backing_file = "base.raw",
      .backing_format = "raw" }, 2, 4);
  round_trip (dir, &(struct qcow2_create_options) {
      .size = 3 << 20, .cluster_size = 16384, .extended_l2 = true,
      .backing_file = "base.raw", .backing_format = "raw",
      .preallocation = QCOW2_PREALLOC_FALLOC }, 3, 4);

  /* An existing file is refused without overwrite and kept. */
  snprintf (path, sizeof path, "%s/img.qcow2", dir);
  CHECK (stat (path, &st) == 0);
  CHECK (qcow2_create (path, &(struct qcow2_create_options) { .size = 1 },
                       &err) == -1);
  CHECK (err.errnum == EEXIST);
  CHECK (stat (path, &st) == 0 && st.st_size > 1 << 20);
  CHECK (qcow2_create (path, &(struct qcow2_create_options) {
        .size = 1, .overwrite = true }, &err) == 0);
  CHECK (stat (path, &st) == 0 && st.st_size == 4 * 65536);
  /* A missing backing file: nothing created. */
  unlink (path);
  CHECK (qcow2_create (path, &(struct qcow2_create_options) {
        .size = 1, .backing_file = "nope.raw", .backing_format = "raw" },
      &err) == -1);
  CHECK (err.errnum == ENOENT);
  CHECK (stat (path, &st) == -1 && errno == ENOENT);

  unlink (base);
  rmdir (dir);
}

int
main (void)
{
  test_layout_grid ();
  test_bad_options ();
  test_files ();
  if (failures) {
    fprintf (stderr, "test-create: %d check(s) failed\n", failures);
    return 1;
  }
  printf ("test-create: OK\n");
  return 0;
}

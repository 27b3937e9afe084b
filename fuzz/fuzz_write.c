/* qcow2x fuzz target 2: writes on a (mutated) image.
 *
 * Input layout (fixed offsets, so mutations of one part leave the
 * others in place; tests/test-fuzz-regressions.sh parses the same):
 *   byte 0  flags: bit 0 tiny L2 cache (forces evictions);
 *                  bits 1-2 has_backing (0,3: as the header says,
 *                  1: no, 2: yes);
 *                  bit 3 inject an I/O fault; bits 4-5 its operation
 *                  (0,3 pwrite, 1 sync, 2 truncate); bit 6 persistent;
 *                  bit 7 errno EIO (else ENOSPC)
 *   byte 1  the fault hits the (byte 1 + 1)th call of that operation
 *   byte 2  number of operations (mod 33)
 *   byte 3  reserved
 *   bytes 4..259    32 operations of 8 bytes:
 *     b0 % 8: 0,1 write; 2 zero (keep host clusters); 3 zero (may
 *             trim); 4 trim; 5 flush; 6 write with FUA; 7 fast zero
 *             (b0 bit 3: may trim)
 *     b1..b4  offset (little endian), shifted left by (b5 & 15), mod
 *             the virtual size
 *     b6..b7  length - 1 (little endian); for zero and trim, times 64
 *             if b5 bit 7
 *     Lengths are cut at the end of the disk.  Write data: byte j of
 *     operation i is (i * 131 + j * 7 + 1) & 0xff.
 *   bytes 260..     the image file (raw or the "QCXS" container,
 *                   fuzz-common.h)
 * The image is opened writable over a private memory copy that may
 * grow to FUZZ_WRITE_MAX bytes (then ENOSPC), the operations are
 * applied, the image is flushed and closed, then reopened read-only
 * and walked (fuzz-common.h).
 *
 * With QCX_FUZZ_STRICT=1 in the environment, contract checks beyond
 * "no crash" are made (design.md §4, issue 5 "Hostile images"):
 *   - no write of guest data, L2 tables or refcount blocks lands on
 *     the header cluster, the L1 table or the refcount table;
 *   - no write starts beyond the end of the file (metadata pointing
 *     past EOF must be an error, not a reason to grow the file);
 *   - an image that opened writable and took every operation and the
 *     final flush without error must open again, and read back what
 *     was written: a model of the guest bytes (every range an operation
 *     touches, and the first MiB) is read before the operations,
 *     updated by each one (writes: their data; zero and trim: zeros, as
 *     this layer alone reads them; a refused fast zero: nothing), and
 *     compared after the reopen.  (The library serves writable only
 *     images whose references are consistent, check.h, so guest
 *     clusters cannot alias.)  Reopened writable, it must still pass
 *     the library's own consistency walk (no overlaps, no double
 *     references, no referenced cluster with refcount 0).
 */
#include <errno.h>

#include "fuzz-common.h"

#define FUZZ_WRITE_MAX (64ULL << 20)
#define HDR 4
#define NR_OPS 32
#define OP_SIZE 8
#define IMAGE_START (HDR + NR_OPS * OP_SIZE)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

static bool strict;
static struct qcow2_image *checked_img; /* image whose writes are checked */

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *s = getenv ("QCX_FUZZ_STRICT");

  (void) argc; (void) argv;
  strict = s && *s && strcmp (s, "0") != 0;
  return 0;
}

/* Every write of common/ except those inside io.c goes through here
 * (linked with -Wl,--wrap=qcx_io_pwrite).
 */
int __real_qcx_io_pwrite (struct qcx_io *io, const void *buf, size_t count,
                          uint64_t offset, const char *what,
                          struct qcx_err *err);
int __wrap_qcx_io_pwrite (struct qcx_io *io, const void *buf, size_t count,
                          uint64_t offset, const char *what,
                          struct qcx_err *err);

static bool
overlaps (uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
  return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

int
__wrap_qcx_io_pwrite (struct qcx_io *io, const void *buf, size_t count,
                      uint64_t offset, const char *what, struct qcx_err *err)
{
  struct qcow2_image *img = checked_img;

  if (strict && img && io == &img->io && !io->readonly) {
    const struct qcow2_header *h = &img->header;
    bool is_meta_table = strcmp (what, "header") == 0 ||
      strcmp (what, "L1 table") == 0 || strcmp (what, "refcount table") == 0 ||
      strcmp (what, "bitmap directory") == 0;

    if (offset > qcx_io_size (io))
      FUZZ_FAIL ("write of %s at 0x%llx (+%zu) starts beyond the end of the "
                 "file (0x%llx bytes)", what, (unsigned long long) offset,
                 count, (unsigned long long) qcx_io_size (io));
    if (!is_meta_table) {
      if (overlaps (offset, count, 0, h->cluster_size))
        FUZZ_FAIL ("write of %s at 0x%llx (+%zu) overwrites the header "
                   "cluster", what, (unsigned long long) offset, count);
      if (overlaps (offset, count, h->l1_table_offset,
                    (uint64_t) h->l1_size * 8))
        FUZZ_FAIL ("write of %s at 0x%llx (+%zu) overwrites the L1 table "
                   "(0x%llx, %u entries)", what, (unsigned long long) offset,
                   count, (unsigned long long) h->l1_table_offset,
                   h->l1_size);
      if (overlaps (offset, count, h->refcount_table_offset,
                    (uint64_t) h->refcount_table_clusters * h->cluster_size))
        FUZZ_FAIL ("write of %s at 0x%llx (+%zu) overwrites the refcount "
                   "table (0x%llx, %u clusters)", what,
                   (unsigned long long) offset, count,
                   (unsigned long long) h->refcount_table_offset,
                   h->refcount_table_clusters);
    }
  }
  return __real_qcx_io_pwrite (io, buf, count, offset, what, err);
}

FUZZ_NO_COVERAGE static uint8_t *
pattern (unsigned i, uint64_t len)
{
  uint8_t *p = malloc (len ? len : 1);

  if (p == NULL)
    abort ();
  for (uint64_t j = 0; j < len; j++)
    p[j] = (i * 131 + j * 7 + 1) & 0xff;
  return p;
}

/* Operation I of the input, cut to the disk: false for a flush (or an
 * empty disk).
 */
static bool
decode_op (const uint8_t *ops, unsigned i, uint64_t size, unsigned *type,
           uint64_t *offset, uint64_t *len)
{
  const uint8_t *b = ops + i * OP_SIZE;

  *type = b[0] % 8;
  if (*type == 5 || size == 0)
    return false;
  *offset = (fuzz_le (b + 1, 4) << (b[5] & 15)) % size;
  *len = fuzz_le (b + 6, 2) + 1;
  if ((b[5] & 0x80) && *type != 0 && *type != 1 && *type != 6)
    *len *= 64;
  if (*len > size - *offset)
    *len = size - *offset;
  return true;
}

/* The data model (strict mode): the expected guest bytes of every range
 * an operation touches, plus the first MiB, as disjoint sorted
 * intervals.
 */
#define MODEL_MAX_BYTES (16ULL << 20)
struct interval { uint64_t start, end; uint8_t *bytes; };
struct model { struct interval iv[NR_OPS + 1]; unsigned nr; };

static int
cmp_interval (const void *a, const void *b)
{
  const struct interval *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

static void
model_free (struct model *m)
{
  for (unsigned i = 0; i < m->nr; i++)
    free (m->iv[i].bytes);
  m->nr = 0;
}

/* Build the intervals and read their current contents; false if the
 * model cannot be used (too large, or a read fails).
 */
static bool
model_init (struct model *m, struct qcow2_image *img, const uint8_t *ops,
            unsigned nr)
{
  uint64_t size = qcow2_image_size (img), total = 0;
  struct interval raw[NR_OPS + 1];
  unsigned n = 0;

  m->nr = 0;
  if (size == 0)
    return false;
  raw[n++] = (struct interval) { 0, size < (1u << 20) ? size : 1u << 20, NULL };
  for (unsigned i = 0; i < nr; i++) {
    unsigned type;
    uint64_t off, len;
    if (decode_op (ops, i, size, &type, &off, &len))
      raw[n++] = (struct interval) { off, off + len, NULL };
  }
  qsort (raw, n, sizeof raw[0], cmp_interval);
  for (unsigned i = 0; i < n; i++) {
    if (m->nr > 0 && raw[i].start <= m->iv[m->nr - 1].end) {
      if (raw[i].end > m->iv[m->nr - 1].end)
        m->iv[m->nr - 1].end = raw[i].end;
    }
    else
      m->iv[m->nr++] = (struct interval) { raw[i].start, raw[i].end, NULL };
  }
  for (unsigned i = 0; i < m->nr; i++)
    total += m->iv[i].end - m->iv[i].start;
  if (total > MODEL_MAX_BYTES) {
    m->nr = 0;
    return false;
  }
  for (unsigned i = 0; i < m->nr; i++) {
    struct interval *v = &m->iv[i];
    struct qcx_err err;
    v->bytes = malloc (v->end - v->start);
    if (v->bytes == NULL)
      abort ();
    if (qcow2_image_read (img, v->bytes, v->end - v->start, v->start,
                          &err) == -1) {
      m->nr = i + 1;
      model_free (m);
      return false;
    }
  }
  return true;
}

/* Apply one successful operation to the model (BUF: written bytes, or
 * NULL for zeros).
 */
static void
model_apply (struct model *m, uint64_t off, uint64_t len, const uint8_t *buf)
{
  for (unsigned i = 0; i < m->nr; i++) {
    struct interval *v = &m->iv[i];
    uint64_t a = off > v->start ? off : v->start;
    uint64_t b = off + len < v->end ? off + len : v->end;
    if (a >= b)
      continue;
    if (buf)
      memcpy (v->bytes + (a - v->start), buf + (a - off), b - a);
    else
      memset (v->bytes + (a - v->start), 0, b - a);
  }
}

/* After the reopen: every modelled byte must read back as expected. */
static void
model_check (struct model *m, struct qcow2_image *img)
{
  for (unsigned i = 0; i < m->nr; i++) {
    struct interval *v = &m->iv[i];
    uint64_t len = v->end - v->start;
    uint8_t *got = malloc (len);
    struct qcx_err err;
    if (got == NULL)
      abort ();
    if (qcow2_image_read (img, got, len, v->start, &err) == -1)
      FUZZ_FAIL ("after the writes, a flush and a reopen, reading 0x%llx+%llu "
                 "fails: %s", (unsigned long long) v->start,
                 (unsigned long long) len, err.msg);
    if (memcmp (got, v->bytes, len) != 0) {
      uint64_t j = 0;
      while (got[j] == v->bytes[j])
        j++;
      FUZZ_FAIL ("after the writes, a flush and a reopen, guest byte 0x%llx "
                 "reads 0x%02x, expected 0x%02x",
                 (unsigned long long) (v->start + j), got[j], v->bytes[j]);
    }
    free (got);
  }
}

/* Apply the operations; true if every one succeeded.  M (may be NULL)
 * follows the successful ones.
 */
static bool
apply_ops (struct qcow2_image *img, const uint8_t *ops, unsigned nr,
           struct model *m)
{
  uint64_t size = qcow2_image_size (img);
  bool ok = true;

  for (unsigned i = 0; i < nr; i++) {
    const uint8_t *b = ops + i * OP_SIZE;
    unsigned type;
    uint64_t offset, len;
    struct qcx_err err;
    uint8_t *buf = NULL;
    bool changes = true;
    int r = 0;

    if (!decode_op (ops, i, size, &type, &offset, &len)) {
      if (type == 5)
        ok &= qcow2_image_flush (img, &err) == 0;
      continue;
    }
    switch (type) {
    case 0: case 1: case 6:
      buf = pattern (i, len);
      r = qcow2_image_write (img, buf, len, offset,
                             type == 6 ? QCOW2_WRITE_FUA : 0, &err);
      break;
    case 2:
      r = qcow2_image_zero (img, len, offset, QCOW2_ZERO_KEEP, 0, &err);
      break;
    case 3:
      r = qcow2_image_zero (img, len, offset, QCOW2_ZERO_MAY_TRIM, 0, &err);
      break;
    case 4:
      r = qcow2_image_zero (img, len, offset, QCOW2_TRIM, 0, &err);
      break;
    case 7:
      r = qcow2_image_zero (img, len, offset,
                            (b[0] & 8) ? QCOW2_ZERO_MAY_TRIM
                            : QCOW2_ZERO_KEEP, QCOW2_ZERO_FAST, &err);
      if (r == -1 && err.errnum == ENOTSUP) {
        r = 0;                  /* refused before any change: fine */
        changes = false;
      }
      break;
    }
    if (r == 0 && changes && m)
      model_apply (m, offset, len, buf);
    free (buf);
    ok &= r == 0;
  }
  return ok;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const enum qcx_io_op fault_ops[4] = {
    QCX_IO_PWRITE, QCX_IO_SYNC, QCX_IO_TRUNCATE, QCX_IO_PWRITE,
  };
  struct qcow2_open_options opts = { .readonly = false, .has_backing = -1 };
  struct qcow2_image *img;
  struct qcx_io io;
  struct qcx_err err;
  uint8_t flags;
  unsigned hb, nr_ops;
  bool fault, ok;
  uint8_t *copy, *file;
  uint64_t copy_size;
  size_t file_size;
  struct model model;
  bool use_model = false;

  if (size < IMAGE_START)
    return 0;
  flags = data[0];
  nr_ops = data[2] % (NR_OPS + 1);
  if (flags & 1)
    opts.l2_cache_bytes = 1;
  hb = (flags >> 1) & 3;
  opts.has_backing = hb == 1 ? 0 : hb == 2 ? 1 : -1;
  fault = flags & 8;

  file = fuzz_decode_image (data + IMAGE_START, size - IMAGE_START,
                            &file_size);
  if (fuzz_known_ext_overrun (file, file_size)) {
    free (file);
    return 0;
  }
  if (qcx_io_open_memory_rw (&io, file, file_size, FUZZ_WRITE_MAX,
                             &err) == -1)
    abort ();
  free (file);
  if (fault)
    qcx_io_inject_fault (&io, fault_ops[(flags >> 4) & 3],
                         (uint64_t) data[1] + 1,
                         (flags & 0x80) ? EIO : ENOSPC, flags & 0x40);
  if (qcow2_image_open_io (&io, &opts, &img, &err) == -1) {
    /* image.h: the caller still owns the store on failure. */
    qcx_io_close (&io);
    return 0;
  }
  /* As the plugin does when the first writing client connects: the
   * consistency walk, which may make the image read-only.
   */
  if (qcow2_image_prepare_writable (img, NULL, &err) == -1) {
    qcow2_image_close (img);
    return 0;
  }
  checked_img = img;
  ok = !img->readonly;
  if (strict && ok && !fault)
    use_model = model_init (&model, img, data + HDR, nr_ops);
  ok &= apply_ops (img, data + HDR, nr_ops, use_model ? &model : NULL);
  ok &= qcow2_image_flush (img, &err) == 0;
  checked_img = NULL;

  /* The file as it is now, for the second open. */
  copy_size = qcx_io_size (&img->io);
  copy = malloc (copy_size ? copy_size : 1);
  if (copy == NULL)
    abort ();
  memcpy (copy, img->io.mem, copy_size);
  qcow2_image_close (img);

  /* What we wrote must pass our own consistency walk (leaks aside). */
  if (strict && ok && !fault) {
    struct qcx_io rw;
    if (qcx_io_open_memory_rw (&rw, copy, copy_size, FUZZ_WRITE_MAX,
                               &err) == -1)
      abort ();
    if (qcow2_image_open_io (&rw, &opts, &img, &err) == -1)
      FUZZ_FAIL ("the image opened writable and took every operation and "
                 "a flush without error, but does not open again: %s",
                 err.msg);
    if (qcow2_image_prepare_writable (img, NULL, &err) == 0 && img->readonly)
      FUZZ_FAIL ("after our own writes and a flush, the image is no longer "
                 "writable: %s", img->readonly_reason);
    qcow2_image_close (img);
  }

  qcx_io_open_memory (&io, copy, copy_size);
  opts.readonly = true;
  if (qcow2_image_open_io (&io, &opts, &img, &err) == -1) {
    if (strict && ok && !fault)
      FUZZ_FAIL ("the image opened writable and took every operation and "
                 "a flush without error, but does not open again: %s",
                 err.msg);
  }
  else {
    if (use_model && ok)
      model_check (&model, img);
    fuzz_walk_image (img, fuzz_hash (data, size), "rewritten image");
    qcow2_image_close (img);
  }
  if (use_model)
    model_free (&model);
  free (copy);
  return 0;
}

/* qcow2x fuzz target 3: a backing chain of two fuzzed images.
 *
 * Input layout (tests/test-fuzz-regressions.sh parses the same):
 *   byte 0     flags: bits 0-1 format given for the backing file when
 *              it is supplied as an override (0 probe, 1 qcow2, 2 raw,
 *              3 qcow2); bit 2 always supply it as an override;
 *              bit 3 allow a second backing layer (the base's own
 *              backing file, when its name is a plain file name in the
 *              same directory: e.g. a loop back to top.qcow2);
 *              bit 4 tiny L2 cache for the top
 *   bytes 1-3  length of the top image (little endian; cut to what
 *              is there)
 *   then       the top image, then the base image (the rest); each
 *              raw or the "QCXS" container (fuzz-common.h)
 * Both are written to a private directory as top.qcow2 and base.qcow2.
 * The top's backing file name is followed if it is a plain name in
 * that directory (seeds name base.qcow2); otherwise, or with bit 2,
 * base.qcow2 is supplied as an override (names with a '/' are never
 * followed: the fuzzer must not read files outside its directory).
 * qcow2_chain_open() opens the layers below the top, the top itself is
 * opened as the filter does (has_backing = 1), and the result is read
 * like the filter reads it: the top's extents, HOLE runs filled from
 * the chain, plus block status of the chain (fuzz-common.h walker).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

static char dir[256], top_path[300], base_path[300];

static void
remove_dir (void)
{
  unlink (top_path);
  unlink (base_path);
  rmdir (dir);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *base = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

  (void) argc; (void) argv;
  snprintf (dir, sizeof dir, "%s/qcx-fuzz-chain.XXXXXX", base);
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    abort ();
  }
  snprintf (top_path, sizeof top_path, "%s/top.qcow2", dir);
  snprintf (base_path, sizeof base_path, "%s/base.qcow2", dir);
  atexit (remove_dir);
  return 0;
}

/* Write the decoded image (its zeros as holes: the fuzzer's files are
 * mostly sparse).
 */
static void
write_file (const char *path, const uint8_t *p, size_t n)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  static const uint8_t zeroes[4096];

  if (fd == -1 || ftruncate (fd, n) == -1)
    abort ();
  for (size_t off = 0; off < n; off += 4096) {
    size_t len = n - off < 4096 ? n - off : 4096;
    if (memcmp (p + off, zeroes, len) == 0)
      continue;
    if (pwrite (fd, p + off, len, off) != (ssize_t) len)
      abort ();
  }
  close (fd);
}

/* A backing name we may follow: a plain file name (resolved in the
 * private directory).
 */
static bool
safe_name (const char *name)
{
  return name && *name && strchr (name, '/') == NULL;
}

/* The header's backing file name of an image in memory (a copy, or
 * NULL), parsed by the library itself.
 */
static char *
backing_name (const uint8_t *p, size_t n, bool *opened)
{
  struct qcow2_open_options o = { .readonly = true, .has_backing = -1 };
  struct qcow2_image *img;
  struct qcx_io io;
  struct qcx_err err;
  char *name = NULL;

  qcx_io_open_memory (&io, p, n);
  *opened = qcow2_image_open_io (&io, &o, &img, &err) == 0;
  if (!*opened)
    return NULL;
  if (img->header.backing_file)
    name = strdup (img->header.backing_file);
  qcow2_image_close (img);
  return name;
}

/* The filter's view: the top layer over the chain. */
struct stack {
  struct qcow2_image *top;
  struct qcow2_chain *chain;
};

/* The top's extents over [offset, offset+count), collected (the walker
 * calls again for what is left).
 */
static int
top_extents (struct stack *s, uint64_t offset, uint64_t count,
             struct fuzz_extent_list *l, struct qcx_err *err)
{
  l->nr = 0;
  l->next = offset;
  l->end = offset + count;
  l->what = "top layer";
  if (qcow2_image_extents (s->top, offset, count, 0, fuzz_extent_cb, l,
                           err) == -1)
    return -1;
  if (l->nr == 0)
    FUZZ_FAIL ("top layer: block status of 0x%llx+%llu succeeded with no "
               "extent", (unsigned long long) offset,
               (unsigned long long) count);
  return 0;
}

/* Read like the filter: HOLE runs of the top come from the chain. */
static int
stack_read (void *t, void *buf, uint64_t count, uint64_t offset,
            struct qcx_err *err)
{
  struct stack *s = t;
  static struct fuzz_extent_list l;
  uint64_t end = offset + count;

  while (offset < end) {
    if (top_extents (s, offset, end - offset, &l, err) == -1)
      return -1;
    for (unsigned i = 0; i < l.nr && offset < end; i++) {
      uint64_t len = l.e[i].length;
      uint8_t *p = (uint8_t *) buf + (count - (end - offset));
      int r;
      if (len > end - offset)
        len = end - offset;
      if (l.e[i].flags == QCX_EXTENT_HOLE)
        r = qcow2_chain_read (s->chain, 0, p, len, offset, err);
      else
        r = qcow2_image_read (s->top, p, len, offset, err);
      if (r == -1)
        return -1;
      offset += len;
    }
  }
  return 0;
}

/* Block status like the filter: the top's, HOLE runs from the chain. */
static int
stack_extents (void *t, uint64_t offset, uint64_t count,
               qcow2_extent_cb cb, void *opaque, struct qcx_err *err)
{
  struct stack *s = t;
  static struct fuzz_extent_list l;
  uint64_t end = offset + count;

  if (s->top == NULL)
    return qcow2_chain_extents (s->chain, 0, offset, count, cb, opaque, err);
  if (top_extents (s, offset, count, &l, err) == -1)
    return -1;
  for (unsigned i = 0; i < l.nr; i++) {
    uint64_t len = l.e[i].length;
    if (l.e[i].offset >= end)
      break;
    if (len > end - l.e[i].offset)
      len = end - l.e[i].offset;
    if (l.e[i].flags == QCX_EXTENT_HOLE) {
      if (qcow2_chain_extents (s->chain, 0, l.e[i].offset, len, cb, opaque,
                               err) == -1)
        return -1;
    }
    else if (cb (opaque, l.e[i].offset, len, l.e[i].flags) != 0)
      break;
  }
  return 0;
}

static int
chain_only_read (void *t, void *buf, uint64_t count, uint64_t offset,
                 struct qcx_err *err)
{
  struct stack *s = t;
  return qcow2_chain_read (s->chain, 0, buf, count, offset, err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const formats[4] = { NULL, "qcow2", "raw", "qcow2" };
  struct qcow2_chain_options co = {
    .top_path = top_path, .max_layers = 1, .max_depth = 4,
  };
  struct qcow2_open_options to = { .readonly = true, .has_backing = 1 };
  struct qcow2_chain chain;
  struct qcow2_image *top;
  struct qcx_io io;
  struct qcx_err err;
  size_t top_len;
  uint8_t flags;
  char *top_name, *base_name;
  bool top_ok, base_ok;
  uint64_t seed = fuzz_hash (data, size);
  uint8_t *topf, *basef;
  size_t topf_size, basef_size;

  if (size < 4)
    return 0;
  flags = data[0];
  top_len = fuzz_le (data + 1, 3);
  if (top_len > size - 4)
    top_len = size - 4;
  topf = fuzz_decode_image (data + 4, top_len, &topf_size);
  basef = fuzz_decode_image (data + 4 + top_len, size - 4 - top_len,
                             &basef_size);
  if (fuzz_known_ext_overrun (topf, topf_size) ||
      fuzz_known_ext_overrun (basef, basef_size)) {
    free (topf);
    free (basef);
    return 0;
  }
  write_file (top_path, topf, topf_size);
  write_file (base_path, basef, basef_size);

  top_name = backing_name (topf, topf_size, &top_ok);
  base_name = backing_name (basef, basef_size, &base_ok);
  if (!top_ok)
    goto out;
  if ((flags & 4) || !safe_name (top_name)) {
    co.backing_override = base_path;
    co.backing_override_format = formats[flags & 3];
  }
  if ((flags & 8) && safe_name (base_name))
    co.max_layers = 2;
  if (flags & 16)
    to.l2_cache_bytes = 1;

  if (qcow2_chain_open (&chain, &co, &err) == -1)
    goto out;
  qcx_io_open_memory (&io, topf, topf_size);
  if (qcow2_image_open_io (&io, &to, &top, &err) == 0) {
    struct stack s = { top, &chain };
    struct fuzz_target_ops o = {
      .size = qcow2_image_size (top),
      .extents = stack_extents,
      .read = stack_read,
      .zero_flags = QCX_EXTENT_HOLE | QCX_EXTENT_ZERO,
      .t = &s,
      .what = "top over chain",
    };
    fuzz_walk (&o, top->l1_table, top->header.l1_size,
               top->header.l2_bits + top->header.cluster_bits, seed);
    qcow2_image_close (top);
  }
  if (chain.nr > 0) {
    struct stack s = { NULL, &chain };
    const struct qcow2_chain_layer *l = &chain.layers[0];
    struct fuzz_target_ops o = {
      .size = l->size,
      .extents = stack_extents,
      .read = chain_only_read,
      .zero_flags = QCX_EXTENT_HOLE | QCX_EXTENT_ZERO,
      .t = &s,
      .what = "chain",
    };
    if (l->kind == QCOW2_LAYER_QCOW2)
      fuzz_walk (&o, l->img->l1_table, l->img->header.l1_size,
                 l->img->header.l2_bits + l->img->header.cluster_bits,
                 seed ^ 1);
    else
      fuzz_walk (&o, NULL, 0, 0, seed ^ 1);
  }
  qcow2_chain_close (&chain);
 out:
  free (top_name);
  free (base_name);
  free (topf);
  free (basef);
  return 0;
}

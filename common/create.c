/* qcow2x common library: creating a new qcow2 image (see create.h;
 * qcow2.txt "Header", "Header extensions", "Feature name table",
 * "Host cluster management", "Cluster mapping", "Extended L2
 * Entries").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byteorder.h"
#include "create.h"
#include "l2entry.h"

#define SECTOR_SIZE 512
#define V3_HEADER_LENGTH 112            /* with compression_type, padded
                                         * to 8 bytes, as QEMU writes it */
#define EXT_HEADER_SIZE 8               /* type + length */
#define FEATURE_NAME_ENTRY 48
#define MAX_BACKING_FORMAT 15           /* QEMU reads it into char[16] */
/* L2 entries hold host offsets in bits 9-55 (qcow2.txt "Standard
 * Cluster Descriptor"), so no cluster may start at or beyond 2^56.
 */
#define MAX_HOST_OFFSET (1ULL << 56)
/* Buffer for writing zeros with preallocation=full. */
#define ZERO_CHUNK (4u << 20)

/* The feature name table QEMU writes (qcow2_update_header), in the
 * same order, so `qemu-img info` and other tools name every bit.
 */
static const struct {
  uint8_t type, bit;
  const char *name;
} feature_table[] = {
  { 0, 0, "dirty bit" },
  { 0, 1, "corrupt bit" },
  { 0, 2, "external data file" },
  { 0, 3, "compression type" },
  { 0, 4, "extended L2 entries" },
  { 1, 0, "lazy refcounts" },
  { 2, 0, "bitmaps" },
  { 2, 1, "raw external data" },
};
#define FEATURE_TABLE_ENTRIES (sizeof feature_table / sizeof feature_table[0])

static const char *const prealloc_names[] = {
  [QCOW2_PREALLOC_OFF] = "off",
  [QCOW2_PREALLOC_METADATA] = "metadata",
  [QCOW2_PREALLOC_FALLOC] = "falloc",
  [QCOW2_PREALLOC_FULL] = "full",
};

int
qcow2_preallocation_from_name (const char *name)
{
  for (unsigned i = 0; i < sizeof prealloc_names / sizeof prealloc_names[0];
       i++)
    if (strcmp (name, prealloc_names[i]) == 0)
      return i;
  return -1;
}

const char *
qcow2_preallocation_name (enum qcow2_preallocation p)
{
  if ((unsigned) p < sizeof prealloc_names / sizeof prealloc_names[0])
    return prealloc_names[p];
  return "?";
}

static uint64_t
div_round_up (uint64_t a, uint64_t b)
{
  return a / b + (a % b != 0);
}

static uint64_t
round_up8 (uint64_t n)
{
  return (n + 7) & ~7ULL;
}

static bool
is_power_of_2 (uint64_t n)
{
  return n != 0 && (n & (n - 1)) == 0;
}

/* QEMU omits the feature name table for clusters of 4 KiB and less:
 * 8 names take 392 bytes and would leave too little room for a
 * backing file name in a 512-byte header cluster.
 */
static bool
want_feature_table (const struct qcow2_create_layout *lo)
{
  return lo->version >= 3 && lo->cluster_size > 4096;
}

/* Bytes of the header cluster used by the header and its extensions,
 * up to and including the end-of-extensions marker.  The backing file
 * name follows.
 */
static uint64_t
header_area_bytes (const struct qcow2_create_options *opts,
                   const struct qcow2_create_layout *lo)
{
  uint64_t n = lo->version >= 3 ? V3_HEADER_LENGTH : QCOW2_V2_HEADER_LENGTH;

  if (opts->backing_format)
    n += EXT_HEADER_SIZE + round_up8 (strlen (opts->backing_format));
  if (want_feature_table (lo))
    n += EXT_HEADER_SIZE + FEATURE_TABLE_ENTRIES * FEATURE_NAME_ENTRY;
  return n + EXT_HEADER_SIZE;
}

/* Options that do not depend on the geometry. */
static int
check_options (const struct qcow2_create_options *opts, unsigned version,
               uint64_t cluster_size, unsigned refcount_bits,
               struct qcx_err *err)
{
  if (version != 2 && version != 3)
    return qcx_error (err, EINVAL, "qcow2 version %u is not supported "
                      "(use 2, i.e. compat=0.10, or 3, i.e. compat=1.1)",
                      version);
  if (!is_power_of_2 (cluster_size) ||
      cluster_size < (1u << QCOW2_MIN_CLUSTER_BITS) ||
      cluster_size > (1u << QCOW2_MAX_CLUSTER_BITS))
    return qcx_error (err, EINVAL, "cluster size %" PRIu64 " is invalid: "
                      "it must be a power of two between 512 and 2M",
                      cluster_size);
  if (!is_power_of_2 (refcount_bits) || refcount_bits > 64)
    return qcx_error (err, EINVAL, "refcount bits %u is invalid: it must "
                      "be a power of two between 1 and 64", refcount_bits);
  if (opts->compression_type != QCOW2_COMPRESSION_ZLIB &&
      opts->compression_type != QCOW2_COMPRESSION_ZSTD)
    return qcx_error (err, EINVAL, "unknown compression type %d",
                      (int) opts->compression_type);

  /* Version 2 (compat=0.10) has no feature bits and a fixed 16-bit
   * refcount width (qcow2.txt: refcount_order is a v3 field).
   */
  if (version == 2) {
    if (refcount_bits != 16)
      return qcx_error (err, EINVAL, "refcount bits other than 16 need "
                        "qcow2 version 3 (compat=1.1)");
    if (opts->extended_l2)
      return qcx_error (err, EINVAL, "extended L2 entries need qcow2 "
                        "version 3 (compat=1.1)");
    if (opts->compression_type != QCOW2_COMPRESSION_ZLIB)
      return qcx_error (err, EINVAL, "zstd compression needs qcow2 "
                        "version 3 (compat=1.1)");
  }
  if (opts->extended_l2 &&
      cluster_size < (1u << QCOW2_MIN_EXTL2_CLUSTER_BITS))
    return qcx_error (err, EINVAL, "extended L2 entries need a cluster "
                      "size of at least 16K (32 subclusters of at least "
                      "512 bytes), not %" PRIu64, cluster_size);

  if (opts->backing_file) {
    size_t len = strlen (opts->backing_file);
    if (len == 0)
      return qcx_error (err, EINVAL, "the backing file name is empty");
    if (len > QCOW2_MAX_BACKING_NAME)
      return qcx_error (err, EINVAL, "the backing file name is too long "
                        "(%zu bytes, max %d)", len, QCOW2_MAX_BACKING_NAME);
  }
  if (opts->backing_format) {
    size_t len = strlen (opts->backing_format);
    if (opts->backing_file == NULL)
      return qcx_error (err, EINVAL, "a backing format was given without "
                        "a backing file");
    if (len == 0 || len > MAX_BACKING_FORMAT)
      return qcx_error (err, EINVAL, "backing format '%s' is invalid "
                        "(1 to %d bytes)", opts->backing_format,
                        MAX_BACKING_FORMAT);
  }

  /* A cluster of a standard L2 table is either allocated in this layer
   * or not: there is no way to reserve a host cluster and still read
   * the backing file (qcow2.txt "Cluster mapping").  Extended L2
   * entries can (host offset with an all-unallocated bitmap).  QEMU
   * refuses the same combination.
   */
  if (opts->backing_file && opts->preallocation != QCOW2_PREALLOC_OFF &&
      !opts->extended_l2)
    return qcx_error (err, EINVAL, "preallocation=%s with a backing file "
                      "needs extended L2 entries: standard L2 entries "
                      "cannot reserve host clusters that still read "
                      "from the backing file",
                      qcow2_preallocation_name (opts->preallocation));
  if ((unsigned) opts->preallocation > QCOW2_PREALLOC_FULL)
    return qcx_error (err, EINVAL, "unknown preallocation mode %d",
                      (int) opts->preallocation);
  return 0;
}

/* Refcount blocks and table clusters for TOTAL clusters: these cover
 * themselves, so iterate to the smallest fixed point.
 */
static int
size_refcounts (struct qcow2_create_layout *lo, uint64_t other_clusters,
                struct qcx_err *err)
{
  uint64_t per_block = lo->cluster_size * 8 >> lo->refcount_order;
  uint64_t per_table_cluster = lo->cluster_size / 8;
  uint64_t blocks = 1, table = 1;

  for (;;) {
    uint64_t total = other_clusters + table + blocks;
    uint64_t b = div_round_up (total, per_block);
    uint64_t t = div_round_up (b, per_table_cluster);
    if (b <= blocks && t <= table)
      break;
    if (b > blocks)
      blocks = b;
    if (t > table)
      table = t;
  }
  if (table * lo->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
    return qcx_error (err, EINVAL, "the image needs a refcount table of "
                      "%" PRIu64 " bytes, more than the %u MiB QEMU "
                      "accepts: use larger clusters or more refcount bits",
                      table * lo->cluster_size,
                      QCOW2_MAX_REFTABLE_BYTES >> 20);
  lo->reftable_clusters = table;
  lo->refblocks = blocks;
  return 0;
}

int
qcow2_create_layout (const struct qcow2_create_options *opts,
                     struct qcow2_create_layout *lo, struct qcx_err *err)
{
  unsigned version = opts->version ? opts->version : 3;
  uint64_t cluster_size =
    opts->cluster_size ? opts->cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE;
  unsigned refcount_bits =
    opts->refcount_bits ? opts->refcount_bits : QCOW2_DEFAULT_REFCOUNT_BITS;
  uint64_t guest_clusters, c, cur;
  bool prealloc = opts->preallocation != QCOW2_PREALLOC_OFF;

  memset (lo, 0, sizeof *lo);
  if (check_options (opts, version, cluster_size, refcount_bits, err) == -1)
    return -1;

  lo->version = version;
  lo->cluster_size = cluster_size;
  lo->cluster_bits = __builtin_ctzll (cluster_size);
  lo->refcount_order = __builtin_ctz (refcount_bits);
  lo->l2_entry_size = opts->extended_l2 ? 16 : 8;
  lo->l2_entries = cluster_size / lo->l2_entry_size;

  /* QEMU keeps the size in 512-byte sectors and truncates anything
   * else when it opens the image, so store what qemu-img create
   * stores: the size rounded up to a multiple of 512.
   */
  if (opts->size > (uint64_t) INT64_MAX - (SECTOR_SIZE - 1))
    return qcx_error (err, EINVAL, "virtual size %" PRIu64 " is too large",
                      opts->size);
  lo->size = (opts->size + SECTOR_SIZE - 1) / SECTOR_SIZE * SECTOR_SIZE;

  guest_clusters = div_round_up (lo->size, cluster_size);
  c = div_round_up (guest_clusters, lo->l2_entries);
  if (c * 8 > QCOW2_MAX_L1_BYTES)
    return qcx_error (err, EINVAL, "virtual size %" PRIu64 " needs an L1 "
                      "table larger than %u MiB with %" PRIu64 "-byte "
                      "clusters: use larger clusters", lo->size,
                      QCOW2_MAX_L1_BYTES >> 20, cluster_size);
  lo->l1_size = c;
  lo->l1_clusters = div_round_up (c * 8, cluster_size);
  if (prealloc) {
    lo->l2_tables = lo->l1_size;
    lo->data_clusters = guest_clusters;
  }

  if (header_area_bytes (opts, lo) +
      (opts->backing_file ? strlen (opts->backing_file) : 0) > cluster_size)
    return qcx_error (err, EINVAL, "the backing file name and format do "
                      "not fit in the %" PRIu64 "-byte header cluster: use "
                      "a shorter name or larger clusters", cluster_size);

  if (size_refcounts (lo, 1 + lo->l1_clusters + lo->l2_tables +
                      lo->data_clusters, err) == -1)
    return -1;

  /* Lay the structures out in QEMU's order, one after the other. */
  cur = 1;
  lo->reftable_offset = cur << lo->cluster_bits;
  cur += lo->reftable_clusters;
  lo->refblocks_offset = cur << lo->cluster_bits;
  cur += lo->refblocks;
  /* QEMU writes l1_table_offset 0 for an empty L1 table. */
  lo->l1_offset = lo->l1_size ? cur << lo->cluster_bits : 0;
  cur += lo->l1_clusters;
  lo->l2_offset = cur << lo->cluster_bits;
  cur += lo->l2_tables;
  lo->data_offset = cur << lo->cluster_bits;
  cur += lo->data_clusters;
  lo->total_clusters = cur;
  if (cur > MAX_HOST_OFFSET >> lo->cluster_bits)
    return qcx_error (err, EINVAL, "the preallocated image would be larger "
                      "than qcow2 can address (2^56 bytes)");
  lo->file_size = cur << lo->cluster_bits;
  if (lo->file_size > (uint64_t) INT64_MAX)
    return qcx_error (err, EFBIG, "the image would be too large");
  return 0;
}

/* ---- writing ---- */

/* Bytes of BUF up to its last non-zero byte, rounded up to a sector. */
static size_t
used_prefix (const uint8_t *buf, size_t len)
{
  while (len > 0 && buf[len - 1] == 0)
    len--;
  return (len + SECTOR_SIZE - 1) / SECTOR_SIZE * SECTOR_SIZE;
}

static int
pwrite_all (int fd, const void *buf, size_t count, uint64_t offset,
            const char *path, const char *what, struct qcx_err *err)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return qcx_error (err, errno, "%s: writing %s at offset 0x%" PRIx64
                        ": %s", path, what, offset, qcx_strerror (errno));
    }
    p += r;
    count -= r;
    offset += r;
  }
  return 0;
}

/* Write one metadata cluster.  The file starts out as a sparse file
 * of its final size, so only the part of the cluster up to its last
 * non-zero byte is written: the rest (most of a big L1 table, the
 * unused end of a 2 MiB refcount block) stays a hole and reads as
 * zeros.
 */
static int
write_cluster (int fd, const uint8_t *buf,
               const struct qcow2_create_layout *lo, uint64_t offset,
               const char *path, const char *what, struct qcx_err *err)
{
  size_t n = used_prefix (buf, lo->cluster_size);

  if (n == 0)
    return 0;
  return pwrite_all (fd, buf, n, offset, path, what, err);
}

/* The header cluster: header fields, backing format extension, feature
 * name table, end marker, backing file name; the same bytes and order
 * as QEMU's qcow2_update_header().
 */
static void
build_header_cluster (const struct qcow2_create_options *opts,
                      const struct qcow2_create_layout *lo, uint8_t *buf)
{
  uint64_t off, incompat = 0;

  memset (buf, 0, lo->cluster_size);
  store_be32 (buf + 0, QCOW2_MAGIC);
  store_be32 (buf + 4, lo->version);
  /* 8: backing_file_offset, 16: backing_file_size (below). */
  store_be32 (buf + 20, lo->cluster_bits);
  store_be64 (buf + 24, lo->size);
  /* 32: crypt_method 0. */
  store_be32 (buf + 36, lo->l1_size);
  store_be64 (buf + 40, lo->l1_offset);
  store_be64 (buf + 48, lo->reftable_offset);
  store_be32 (buf + 56, lo->reftable_clusters);
  /* 60: nb_snapshots 0, 64: snapshots_offset 0. */

  if (lo->version >= 3) {
    if (opts->compression_type != QCOW2_COMPRESSION_ZLIB)
      incompat |= QCOW2_INCOMPAT_COMPRESSION;
    if (opts->extended_l2)
      incompat |= QCOW2_INCOMPAT_EXTL2;
    store_be64 (buf + 72, incompat);
    /* 80: compatible features 0 (no lazy refcounts), 88: autoclear 0. */
    store_be32 (buf + 96, lo->refcount_order);
    store_be32 (buf + 100, V3_HEADER_LENGTH);
    /* Byte 104: compression_type; 105-111 padding. */
    buf[104] = opts->compression_type;
    off = V3_HEADER_LENGTH;
  }
  else
    off = QCOW2_V2_HEADER_LENGTH;

  if (opts->backing_format) {
    size_t len = strlen (opts->backing_format);
    store_be32 (buf + off, QCOW2_EXT_BACKING_FORMAT);
    store_be32 (buf + off + 4, len);
    memcpy (buf + off + EXT_HEADER_SIZE, opts->backing_format, len);
    off += EXT_HEADER_SIZE + round_up8 (len);
  }
  if (want_feature_table (lo)) {
    store_be32 (buf + off, QCOW2_EXT_FEATURE_TABLE);
    store_be32 (buf + off + 4, FEATURE_TABLE_ENTRIES * FEATURE_NAME_ENTRY);
    off += EXT_HEADER_SIZE;
    for (unsigned i = 0; i < FEATURE_TABLE_ENTRIES; i++) {
      uint8_t *e = buf + off + i * FEATURE_NAME_ENTRY;
      e[0] = feature_table[i].type;
      e[1] = feature_table[i].bit;
      memcpy (e + 2, feature_table[i].name, strlen (feature_table[i].name));
    }
    off += FEATURE_TABLE_ENTRIES * FEATURE_NAME_ENTRY;
  }
  off += EXT_HEADER_SIZE;       /* end of extensions: 8 zero bytes */

  if (opts->backing_file) {
    size_t len = strlen (opts->backing_file);
    store_be64 (buf + 8, off);
    store_be32 (buf + 16, len);
    memcpy (buf + off, opts->backing_file, len);
  }
}

/* Set entry INDEX of a refcount block to 1.  Entries narrower than a
 * byte are packed from the least significant bit; wider ones are big
 * endian (qcow2.txt "Refcount block entry").
 */
static void
refcount_set_one (uint8_t *block, unsigned refcount_order, uint64_t index)
{
  unsigned bits = 1u << refcount_order;

  if (bits < 8) {
    uint64_t bit = index * bits;
    block[bit / 8] |= 1u << (bit % 8);
  }
  else
    block[(index + 1) * (bits / 8) - 1] = 1;
}

static int
write_refcount_table (int fd, const char *path,
                      const struct qcow2_create_layout *lo, uint8_t *buf,
                      struct qcx_err *err)
{
  uint64_t per_cluster = lo->cluster_size / 8;

  for (uint64_t t = 0; t < lo->reftable_clusters; t++) {
    memset (buf, 0, lo->cluster_size);
    for (uint64_t i = 0; i < per_cluster; i++) {
      uint64_t block = t * per_cluster + i;
      if (block >= lo->refblocks)
        break;
      store_be64 (buf + i * 8,
                  lo->refblocks_offset + (block << lo->cluster_bits));
    }
    if (write_cluster (fd, buf, lo,
                       lo->reftable_offset + (t << lo->cluster_bits), path,
                       "the refcount table", err) == -1)
      return -1;
  }
  return 0;
}

/* Every cluster of the file, 0 .. total_clusters-1, is used exactly
 * once, and nothing beyond.
 */
static int
write_refcount_blocks (int fd, const char *path,
                       const struct qcow2_create_layout *lo, uint8_t *buf,
                       struct qcx_err *err)
{
  uint64_t per_block = lo->cluster_size * 8 >> lo->refcount_order;

  for (uint64_t b = 0; b < lo->refblocks; b++) {
    uint64_t first = b * per_block;
    memset (buf, 0, lo->cluster_size);
    for (uint64_t i = 0; i < per_block && first + i < lo->total_clusters; i++)
      refcount_set_one (buf, lo->refcount_order, i);
    if (write_cluster (fd, buf, lo,
                       lo->refblocks_offset + (b << lo->cluster_bits), path,
                       "a refcount block", err) == -1)
      return -1;
  }
  return 0;
}

/* The L1 table: empty, or (preallocation) pointing at L2 table i in
 * cluster l2_offset + i.  Refcount 1, so the COPIED bit is set
 * (qcow2.txt: "0 for an L2 table that is unused or requires COW, 1 if
 * its refcount is exactly one").
 */
static int
write_l1_table (int fd, const char *path,
                const struct qcow2_create_layout *lo, uint8_t *buf,
                struct qcx_err *err)
{
  uint64_t per_cluster = lo->cluster_size / 8;

  for (uint64_t c = 0; c < lo->l1_clusters; c++) {
    memset (buf, 0, lo->cluster_size);
    for (uint64_t i = 0; i < per_cluster; i++) {
      uint64_t l2 = c * per_cluster + i;
      if (l2 >= lo->l2_tables)
        break;
      store_be64 (buf + i * 8, QCOW2_OFLAG_COPIED |
                  (lo->l2_offset + (l2 << lo->cluster_bits)));
    }
    if (write_cluster (fd, buf, lo,
                       lo->l1_offset + (c << lo->cluster_bits), path,
                       "the L1 table", err) == -1)
      return -1;
  }
  return 0;
}

/* Preallocated L2 tables: guest cluster G maps to host cluster
 * data_offset + G * cluster_size, COPIED, as QEMU's preallocation
 * does.  No zero flag: the data clusters read as zero because the file
 * is extended over them (metadata), fallocated (falloc) or written
 * (full).  With extended L2 entries the subcluster bitmap stays 0
 * (all unallocated): the clusters are reserved but read from the
 * backing file, or as zero without one — again exactly what QEMU
 * writes.
 */
static int
write_l2_tables (int fd, const char *path,
                 const struct qcow2_create_layout *lo, uint8_t *buf,
                 struct qcx_err *err)
{
  for (uint64_t t = 0; t < lo->l2_tables; t++) {
    memset (buf, 0, lo->cluster_size);
    for (uint64_t i = 0; i < lo->l2_entries; i++) {
      uint64_t g = t * lo->l2_entries + i;
      if (g >= lo->data_clusters)
        break;
      store_be64 (buf + i * lo->l2_entry_size, QCOW2_OFLAG_COPIED |
                  (lo->data_offset + (g << lo->cluster_bits)));
    }
    if (write_cluster (fd, buf, lo,
                       lo->l2_offset + (t << lo->cluster_bits), path,
                       "an L2 table", err) == -1)
      return -1;
  }
  return 0;
}

static int
preallocate_data (int fd, const char *path,
                  const struct qcow2_create_layout *lo,
                  enum qcow2_preallocation mode, struct qcx_err *err)
{
  uint64_t len = lo->data_clusters << lo->cluster_bits;
  uint8_t *zeros;
  int r;

  if (len == 0)
    return 0;
  switch (mode) {
  case QCOW2_PREALLOC_OFF:
  case QCOW2_PREALLOC_METADATA:
    /* The file was extended over the data area: sparse zeros. */
    return 0;
  case QCOW2_PREALLOC_FALLOC:
    r = posix_fallocate (fd, lo->data_offset, len);
    if (r != 0)
      return qcx_error (err, r, "%s: preallocating %" PRIu64 " bytes: %s",
                        path, len, qcx_strerror (r));
    return 0;
  case QCOW2_PREALLOC_FULL:
    zeros = calloc (1, ZERO_CHUNK);
    if (zeros == NULL)
      return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
    for (uint64_t done = 0; done < len; ) {
      size_t n = len - done < ZERO_CHUNK ? len - done : ZERO_CHUNK;
      if (pwrite_all (fd, zeros, n, lo->data_offset + done, path,
                      "preallocated zeros", err) == -1) {
        free (zeros);
        return -1;
      }
      done += n;
    }
    free (zeros);
    return 0;
  }
  return qcx_error (err, EINVAL, "unknown preallocation mode %d", (int) mode);
}

/* Directory holding PATH, for resolving a relative backing file name
 * (QEMU resolves it against the overlay's directory) and for fsync.
 */
static char *
parent_dir (const char *path)
{
  const char *slash = strrchr (path, '/');

  if (slash == NULL)
    return strdup (".");
  if (slash == path)
    return strdup ("/");
  return strndup (path, slash - path);
}

/* Like qemu-img create (without -u), refuse a backing file that does
 * not exist, one that claims to be qcow2 but is not, and the image
 * itself (overwriting it would destroy the backing data).
 */
static int
check_backing_file (const char *path, const struct qcow2_create_options *opts,
                    struct qcx_err *err)
{
  char *dir, *full;
  struct stat st, self;
  int fd, r = -1;
  uint8_t magic[4];

  if (opts->backing_file[0] == '/')
    full = strdup (opts->backing_file);
  else {
    dir = parent_dir (path);
    if (dir == NULL || asprintf (&full, "%s/%s", dir, opts->backing_file) < 0)
      full = NULL;
    free (dir);
  }
  if (full == NULL)
    return qcx_error (err, ENOMEM, "out of memory");

  if (stat (full, &st) == -1) {
    qcx_error (err, errno, "backing file '%s' (%s): %s", opts->backing_file,
               full, qcx_strerror (errno));
    goto out;
  }
  if (stat (path, &self) == 0 &&
      self.st_dev == st.st_dev && self.st_ino == st.st_ino) {
    qcx_error (err, EINVAL, "the backing file '%s' is the image itself",
               opts->backing_file);
    goto out;
  }
  if (opts->backing_format && strcmp (opts->backing_format, "qcow2") == 0) {
    fd = open (full, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
      qcx_error (err, errno, "backing file '%s': %s", full, qcx_strerror (errno));
      goto out;
    }
    if (pread (fd, magic, 4, 0) != 4 || load_be32 (magic) != QCOW2_MAGIC) {
      close (fd);
      qcx_error (err, EINVAL, "backing file '%s' is not a qcow2 image "
                 "(backing format is qcow2)", full);
      goto out;
    }
    close (fd);
  }
  r = 0;
 out:
  free (full);
  return r;
}

/* Make the new directory entry durable too. */
static int
fsync_parent_dir (const char *path, struct qcx_err *err)
{
  char *dir = parent_dir (path);
  int fd;

  if (dir == NULL)
    return qcx_error (err, ENOMEM, "out of memory");
  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) {
    qcx_error (err, errno, "open: %s: %s", dir, qcx_strerror (errno));
    free (dir);
    return -1;
  }
  if (fsync (fd) == -1 && errno != EINVAL) {
    qcx_error (err, errno, "fsync: %s: %s", dir, qcx_strerror (errno));
    close (fd);
    free (dir);
    return -1;
  }
  close (fd);
  free (dir);
  return 0;
}

/* Open PATH for creation.  Returns the fd, or -1.  Without overwrite,
 * O_EXCL makes "does it exist" and "create it" one atomic step.  With
 * overwrite, only a regular file is truncated (never a device or a
 * directory).
 */
static int
open_new_image (const char *path, bool overwrite, struct qcx_err *err)
{
  struct stat st;
  int fd;

  if (!overwrite) {
    fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd == -1 && errno == EEXIST)
      return qcx_error (err, EEXIST, "%s already exists: refusing to "
                        "overwrite it", path);
    if (fd == -1)
      return qcx_error (err, errno, "create: %s: %s", path, qcx_strerror (errno));
    return fd;
  }

  if (stat (path, &st) == 0 && !S_ISREG (st.st_mode))
    return qcx_error (err, EINVAL, "%s is not a regular file: refusing "
                      "to create an image on it", path);
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1)
    return qcx_error (err, errno, "open: %s: %s", path, qcx_strerror (errno));
  if (fstat (fd, &st) == -1) {
    int e = errno;
    close (fd);
    return qcx_error (err, e, "fstat: %s: %s", path, qcx_strerror (e));
  }
  if (!S_ISREG (st.st_mode)) {
    close (fd);
    return qcx_error (err, EINVAL, "%s is not a regular file: refusing "
                      "to create an image on it", path);
  }
  return fd;
}

static int
write_image (int fd, const char *path, const struct qcow2_create_options *opts,
             const struct qcow2_create_layout *lo, struct qcx_err *err)
{
  uint8_t *buf = malloc (lo->cluster_size);
  int r = -1;

  if (buf == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));

  /* Start from an empty file of the final size: every cluster we do
   * not write (the rest of the L1 table, preallocated data) reads as
   * zero, and with overwrite no old byte survives.
   */
  if (ftruncate (fd, 0) == -1 || ftruncate (fd, lo->file_size) == -1) {
    qcx_error (err, errno, "%s: truncating to %" PRIu64 " bytes: %s",
               path, lo->file_size, qcx_strerror (errno));
    goto out;
  }
  if (write_refcount_table (fd, path, lo, buf, err) == -1 ||
      write_refcount_blocks (fd, path, lo, buf, err) == -1 ||
      write_l1_table (fd, path, lo, buf, err) == -1 ||
      write_l2_tables (fd, path, lo, buf, err) == -1 ||
      preallocate_data (fd, path, lo, opts->preallocation, err) == -1)
    goto out;

  /* The header goes last, after everything it points at is durable:
   * a crash during creation leaves a file that is not a qcow2 image,
   * never one with a valid header over missing metadata.
   */
  if (fdatasync (fd) == -1) {
    qcx_error (err, errno, "fdatasync: %s: %s", path, qcx_strerror (errno));
    goto out;
  }
  build_header_cluster (opts, lo, buf);
  if (write_cluster (fd, buf, lo, 0, path, "the header", err) == -1)
    goto out;
  if (fsync (fd) == -1) {
    qcx_error (err, errno, "fsync: %s: %s", path, qcx_strerror (errno));
    goto out;
  }
  r = 0;
 out:
  free (buf);
  return r;
}

int
qcow2_create (const char *path, const struct qcow2_create_options *opts,
              struct qcx_err *err)
{
  struct qcow2_create_layout lo;
  int fd;

  /* Everything that can be checked is checked before the file is
   * created or truncated.
   */
  if (qcow2_create_layout (opts, &lo, err) == -1)
    return -1;
  if (opts->backing_file && check_backing_file (path, opts, err) == -1)
    return -1;

  fd = open_new_image (path, opts->overwrite, err);
  if (fd == -1)
    return -1;
  if (write_image (fd, path, opts, &lo, err) == -1) {
    /* Half an image is worse than none: remove it (it was either
     * created by us or already truncated).
     */
    close (fd);
    unlink (path);
    return -1;
  }
  if (close (fd) == -1) {
    qcx_error (err, errno, "close: %s: %s", path, qcx_strerror (errno));
    unlink (path);
    return -1;
  }
  return fsync_parent_dir (path, err);
}

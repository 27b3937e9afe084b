/* qcow2x common library: the qcow2 header and its extensions
 * (see header.h; qcow2.txt "Header", "Header extensions",
 * "Feature name table").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "header.h"

#define FEATURE_NAME_ENTRY 48

/* Incompatible bits we understand, with the names QEMU gives them, so
 * an error can name a bit even when the image has no feature table.
 */
static const char *const known_incompat_names[] = {
  "dirty bit", "corrupt bit", "external data file", "compression type",
  "extended L2 entries",
};

static uint64_t
div_round_up (uint64_t a, uint64_t b)
{
  return a / b + (a % b != 0);
}

const char *
qcow2_feature_name (const struct qcow2_header *h, unsigned type, unsigned bit)
{
  for (unsigned i = 0; i < h->nr_feature_names; i++)
    if (h->feature_names[i].type == type && h->feature_names[i].bit == bit)
      return h->feature_names[i].name;
  return NULL;
}

void
qcow2_header_free (struct qcow2_header *h)
{
  free (h->backing_file);
  free (h->backing_format);
  free (h->feature_names);
  h->backing_file = h->backing_format = NULL;
  h->feature_names = NULL;
  h->nr_feature_names = 0;
}

static int
parse_feature_table (struct qcow2_header *h, const uint8_t *data,
                     uint32_t len)
{
  unsigned n = len / FEATURE_NAME_ENTRY;

  free (h->feature_names);
  h->feature_names = calloc (n ? n : 1, sizeof *h->feature_names);
  if (h->feature_names == NULL)
    return -1;
  h->nr_feature_names = n;
  for (unsigned i = 0; i < n; i++) {
    const uint8_t *e = data + i * FEATURE_NAME_ENTRY;
    h->feature_names[i].type = e[0];
    h->feature_names[i].bit = e[1];
    /* The name is zero-padded but not necessarily terminated. */
    memcpy (h->feature_names[i].name, e + 2, 46);
    h->feature_names[i].name[46] = '\0';
  }
  return 0;
}

/* Walk the header extensions between START and END (both inside BUF). */
static int
parse_extensions (struct qcow2_header *h, const uint8_t *buf,
                  uint64_t start, uint64_t end, struct qcx_err *err)
{
  uint64_t off = start;
  uint32_t seen = 0;    /* bit mask of known extensions already seen */

  while (off <= end && end - off >= 8) {
    uint32_t type = load_be32 (buf + off);
    uint32_t len = load_be32 (buf + off + 4);
    const uint8_t *data = buf + off + 8;
    unsigned seen_bit;

    if (type == QCOW2_EXT_END) {
      off += 8;
      break;
    }
    if (len > end - off - 8)
      return qcx_error (err, EINVAL,
                        "header extension 0x%08" PRIx32 " at offset 0x%"
                        PRIx64 " has length %" PRIu32 ", which overruns "
                        "the header area (ends at 0x%" PRIx64 ")",
                        type, off, len, end);

    switch (type) {
    case QCOW2_EXT_BACKING_FORMAT: seen_bit = 1; break;
    case QCOW2_EXT_FEATURE_TABLE:  seen_bit = 2; break;
    case QCOW2_EXT_BITMAPS:        seen_bit = 4; break;
    case QCOW2_EXT_CRYPTO:         seen_bit = 8; break;
    case QCOW2_EXT_DATA_FILE:      seen_bit = 16; break;
    default:                       seen_bit = 0; break; /* ignored */
    }
    if (seen & seen_bit)
      return qcx_error (err, EINVAL, "header extension 0x%08" PRIx32
                        " appears more than once", type);
    seen |= seen_bit;

    switch (type) {
    case QCOW2_EXT_BACKING_FORMAT:
      if (len > QCOW2_MAX_BACKING_NAME)
        return qcx_error (err, EINVAL,
                          "backing format header extension is too long "
                          "(%" PRIu32 " bytes)", len);
      h->backing_format = strndup ((const char *) data, len);
      if (h->backing_format == NULL)
        return qcx_error (err, errno, "strndup: %s", qcx_strerror (errno));
      break;
    case QCOW2_EXT_FEATURE_TABLE:
      if (parse_feature_table (h, data, len) == -1)
        return qcx_error (err, errno, "calloc: %s", qcx_strerror (errno));
      break;
    case QCOW2_EXT_BITMAPS:
      if (len < 24)
        return qcx_error (err, EINVAL,
                          "bitmaps header extension is too short "
                          "(%" PRIu32 " bytes)", len);
      h->has_bitmaps_ext = true;
      h->nb_bitmaps = load_be32 (data);
      h->bitmap_directory_size = load_be64 (data + 8);
      h->bitmap_directory_offset = load_be64 (data + 16);
      break;
    case QCOW2_EXT_DATA_FILE:
      return qcx_error (err, ENOTSUP,
                        "images with an external data file are not "
                        "supported");
    default:
      break;
    }
    off += 8 + ((uint64_t) len + 7) / 8 * 8;
  }
  h->extensions_end = off < end ? off : end;
  return 0;
}

static int
check_incompatible (const struct qcow2_header *h, struct qcx_err *err)
{
  uint64_t unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;

  if (unknown) {
    unsigned bit = __builtin_ctzll (unknown);
    const char *name = qcow2_feature_name (h, 0, bit);
    if (name && *name)
      return qcx_error (err, ENOTSUP,
                        "unsupported incompatible feature: %s (bit %u)",
                        name, bit);
    return qcx_error (err, ENOTSUP,
                      "unsupported incompatible feature: bit %u", bit);
  }
  if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
    return qcx_error (err, ENOTSUP,
                      "images with an external data file are not supported "
                      "(incompatible feature: %s)", known_incompat_names[2]);
  if (h->crypt_method != 0)
    return qcx_error (err, ENOTSUP,
                      "encrypted images are not supported "
                      "(crypt_method %" PRIu32 ")", h->crypt_method);
  return 0;
}

static int
check_compression (struct qcow2_header *h, const uint8_t *buf,
                   struct qcx_err *err)
{
  uint8_t type = 0;

  if (h->header_length > QCOW2_V3_HEADER_LENGTH)
    type = buf[QCOW2_V3_HEADER_LENGTH];
  if (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) {
    if (type == 0)
      return qcx_error (err, EINVAL,
                        "the compression type bit is set but the "
                        "compression_type field is missing or zlib");
  }
  else if (type != 0)
    return qcx_error (err, EINVAL,
                      "compression_type %u is set without the compression "
                      "type incompatible bit", type);
  if (type != QCOW2_COMPRESSION_ZLIB && type != QCOW2_COMPRESSION_ZSTD)
    return qcx_error (err, ENOTSUP, "unsupported compression type %u", type);
  h->compression_type = type;
  return 0;
}

/* Check a table of LEN bytes at OFFSET: cluster-aligned, not on the
 * header cluster, inside the file.
 */
static int
check_table (const struct qcow2_header *h, const struct qcx_io *io,
             const char *what, uint64_t offset, uint64_t len,
             struct qcx_err *err)
{
  if (offset & (h->cluster_size - 1))
    return qcx_error (err, EINVAL, "%s offset 0x%" PRIx64 " is not aligned "
                      "to a cluster boundary", what, offset);
  if (offset == 0)
    return qcx_error (err, EINVAL, "%s offset is 0 (the header cluster)",
                      what);
  if (!qcx_io_contains (io, offset, len))
    return qcx_error (err, EINVAL, "%s at offset 0x%" PRIx64 " (%" PRIu64
                      " bytes) is beyond the end of the file (0x%" PRIx64
                      " bytes)", what, offset, len, io->size);
  return 0;
}

static int
check_layout (struct qcow2_header *h, const struct qcx_io *io,
              struct qcx_err *err)
{
  uint64_t clusters, reftable_bytes;

  if (h->refcount_order > 6)
    return qcx_error (err, EINVAL,
                      "refcount_order %" PRIu32 " is out of range (max 6)",
                      h->refcount_order);
  if (h->extended_l2 && h->cluster_bits < QCOW2_MIN_EXTL2_CLUSTER_BITS)
    return qcx_error (err, EINVAL, "extended L2 entries need cluster_bits "
                      ">= %d, image has %" PRIu32,
                      QCOW2_MIN_EXTL2_CLUSTER_BITS, h->cluster_bits);

  /* The L1 table must cover the virtual size (qcow2.txt "Cluster
   * mapping"), and stay within QEMU's 32 MiB so we never allocate
   * more than that for it.
   */
  clusters = div_round_up (h->size, h->cluster_size);
  h->l1_size_needed = div_round_up (clusters, h->l2_entries);
  if (h->l1_size_needed > QCOW2_MAX_L1_BYTES / 8)
    return qcx_error (err, EINVAL, "virtual size %" PRIu64 " needs an L1 "
                      "table larger than %u MiB", h->size,
                      QCOW2_MAX_L1_BYTES >> 20);
  if (h->l1_size < h->l1_size_needed)
    return qcx_error (err, EINVAL, "L1 table too small: l1_size %" PRIu32
                      " but the virtual size needs %" PRIu64 " entries",
                      h->l1_size, h->l1_size_needed);
  if ((uint64_t) h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return qcx_error (err, EINVAL, "L1 table too large: l1_size %" PRIu32
                      " exceeds %u MiB", h->l1_size, QCOW2_MAX_L1_BYTES >> 20);
  if (h->l1_size > 0 &&
      check_table (h, io, "L1 table", h->l1_table_offset,
                   (uint64_t) h->l1_size * 8, err) == -1)
    return -1;

  if (h->refcount_table_clusters == 0)
    return qcx_error (err, EINVAL, "refcount table has 0 clusters");
  reftable_bytes = (uint64_t) h->refcount_table_clusters * h->cluster_size;
  if (reftable_bytes > QCOW2_MAX_REFTABLE_BYTES)
    return qcx_error (err, EINVAL, "refcount table too large: %" PRIu32
                      " clusters exceed %u MiB", h->refcount_table_clusters,
                      QCOW2_MAX_REFTABLE_BYTES >> 20);
  if (check_table (h, io, "refcount table", h->refcount_table_offset,
                   reftable_bytes, err) == -1)
    return -1;

  if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
    return qcx_error (err, EINVAL, "too many snapshots (%" PRIu32 ")",
                      h->nb_snapshots);
  if (h->nb_snapshots > 0 &&
      check_table (h, io, "snapshot table", h->snapshots_offset, 40, err) == -1)
    return -1;
  return 0;
}

static int
parse_backing_name (struct qcow2_header *h, const uint8_t *buf,
                    uint64_t buflen, struct qcx_err *err)
{
  if (h->backing_file_offset == 0 || h->backing_file_size == 0)
    return 0;
  if (h->backing_file_size > QCOW2_MAX_BACKING_NAME)
    return qcx_error (err, EINVAL, "backing file name is too long (%" PRIu32
                      " bytes, max %d)", h->backing_file_size,
                      QCOW2_MAX_BACKING_NAME);
  if (h->backing_file_offset > buflen ||
      h->backing_file_size > buflen - h->backing_file_offset)
    return qcx_error (err, EINVAL, "backing file name (offset 0x%" PRIx64
                      ", %" PRIu32 " bytes) lies outside the header cluster",
                      h->backing_file_offset, h->backing_file_size);
  if (h->backing_file_offset < h->header_length)
    return qcx_error (err, EINVAL, "backing file name overlaps the header");
  if (memchr (buf + h->backing_file_offset, '\0', h->backing_file_size))
    return qcx_error (err, EINVAL, "backing file name contains a NUL byte");
  h->backing_file = strndup ((const char *) buf + h->backing_file_offset,
                             h->backing_file_size);
  if (h->backing_file == NULL)
    return qcx_error (err, errno, "strndup: %s", qcx_strerror (errno));
  return 0;
}

static void
decode_fields (struct qcow2_header *h, const uint8_t *b)
{
  h->backing_file_offset = load_be64 (b + 8);
  h->backing_file_size = load_be32 (b + 16);
  h->size = load_be64 (b + 24);
  h->crypt_method = load_be32 (b + 32);
  h->l1_size = load_be32 (b + 36);
  h->l1_table_offset = load_be64 (b + 40);
  h->refcount_table_offset = load_be64 (b + 48);
  h->refcount_table_clusters = load_be32 (b + 56);
  h->nb_snapshots = load_be32 (b + 60);
  h->snapshots_offset = load_be64 (b + 64);
  if (h->version >= 3) {
    h->incompatible_features = load_be64 (b + 72);
    h->compatible_features = load_be64 (b + 80);
    h->autoclear_features = load_be64 (b + 88);
    h->refcount_order = load_be32 (b + 96);
  }
  else
    h->refcount_order = 4;
}

static void
derive_geometry (struct qcow2_header *h)
{
  h->cluster_size = 1ULL << h->cluster_bits;
  h->extended_l2 = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) != 0;
  h->l2_entry_size = h->extended_l2 ? 16 : 8;
  h->l2_bits = h->cluster_bits - (h->extended_l2 ? 4 : 3);
  h->l2_entries = 1ULL << h->l2_bits;
  h->subclusters = h->extended_l2 ? 32 : 1;
  h->subcluster_bits = h->cluster_bits - (h->extended_l2 ? 5 : 0);
  h->subcluster_size = 1ULL << h->subcluster_bits;
}

int
qcow2_header_parse (const struct qcx_io *io, struct qcow2_header *h,
                    struct qcx_err *err)
{
  uint8_t fixed[QCOW2_V3_HEADER_LENGTH];
  uint8_t *buf = NULL;
  uint64_t buflen, ext_end;
  int r = -1;

  memset (h, 0, sizeof *h);
  if (io->size < QCOW2_V2_HEADER_LENGTH)
    return qcx_error (err, EINVAL, "file is too short to be a qcow2 image "
                      "(%" PRIu64 " bytes)", io->size);
  if (qcx_io_pread (io, fixed, QCOW2_V2_HEADER_LENGTH, 0, "header", err) == -1)
    return -1;
  if (load_be32 (fixed) != QCOW2_MAGIC)
    return qcx_error (err, EINVAL, "not a qcow2 image (bad magic)");
  h->version = load_be32 (fixed + 4);
  if (h->version != 2 && h->version != 3)
    return qcx_error (err, ENOTSUP, "unsupported qcow2 version %" PRIu32,
                      h->version);
  h->cluster_bits = load_be32 (fixed + 20);
  if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return qcx_error (err, EINVAL, "cluster_bits %" PRIu32 " is out of range "
                      "(%d to %d)", h->cluster_bits, QCOW2_MIN_CLUSTER_BITS,
                      QCOW2_MAX_CLUSTER_BITS);

  h->header_length = QCOW2_V2_HEADER_LENGTH;
  if (h->version >= 3) {
    if (io->size < QCOW2_V3_HEADER_LENGTH)
      return qcx_error (err, EINVAL, "file is too short for a version 3 "
                        "header (%" PRIu64 " bytes)", io->size);
    if (qcx_io_pread (io, fixed, QCOW2_V3_HEADER_LENGTH, 0, "header",
                      err) == -1)
      return -1;
    h->header_length = load_be32 (fixed + 100);
    if (h->header_length < QCOW2_V3_HEADER_LENGTH ||
        h->header_length % 8 != 0 ||
        h->header_length > (1U << h->cluster_bits))
      return qcx_error (err, EINVAL, "header_length %" PRIu32 " is invalid "
                        "(must be a multiple of 8, at least %d and at most "
                        "the cluster size)", h->header_length,
                        QCOW2_V3_HEADER_LENGTH);
  }
  decode_fields (h, fixed);
  derive_geometry (h);

  /* The header cluster: header, extensions, backing file name. */
  buflen = h->cluster_size < io->size ? h->cluster_size : io->size;
  if (buflen < h->header_length)
    return qcx_error (err, EINVAL, "file is too short for its header_length "
                      "(%" PRIu32 ")", h->header_length);
  buf = malloc (buflen);
  if (buf == NULL)
    return qcx_error (err, errno, "malloc: %s", qcx_strerror (errno));
  if (qcx_io_pread (io, buf, buflen, 0, "header cluster", err) == -1)
    goto out;

  ext_end = buflen;
  if (h->backing_file_offset != 0 && h->backing_file_offset < ext_end)
    ext_end = h->backing_file_offset;
  if (ext_end < h->header_length)
    ext_end = h->header_length;
  if (parse_extensions (h, buf, h->header_length, ext_end, err) == -1 ||
      check_incompatible (h, err) == -1 ||
      (h->version >= 3 && check_compression (h, buf, err) == -1) ||
      parse_backing_name (h, buf, buflen, err) == -1 ||
      check_layout (h, io, err) == -1)
    goto out;
  r = 0;
 out:
  free (buf);
  if (r == -1)
    qcow2_header_free (h);
  return r;
}

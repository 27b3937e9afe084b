/* Unit test of the subcluster classifier and the compressed cluster
 * descriptor (common/l2entry.c), against the tables of qcow2.txt
 * "Extended L2 Entries" and "Compressed Clusters Descriptor".
 * Runs without nbdkit or any image.
 */
#include <stdio.h>
#include <stdlib.h>

#include "l2entry.h"

static int failures;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
               #cond);                                                  \
      failures++;                                                       \
    }                                                                   \
  } while (0)

static const struct qcow2_l2_geometry std64k = { 16, false };
static const struct qcow2_l2_geometry ext64k = { 16, true };

static void
test_standard (void)
{
  uint64_t host = 0x50000;

  CHECK (qcow2_classify_subcluster (&std64k, 0, 0, 0) ==
         QCOW2_SC_UNALLOCATED_PLAIN);
  CHECK (qcow2_classify_subcluster (&std64k, host | QCOW2_OFLAG_COPIED, 0, 0)
         == QCOW2_SC_NORMAL);
  CHECK (qcow2_classify_subcluster (&std64k, QCOW2_OFLAG_ZERO, 0, 0) ==
         QCOW2_SC_ZERO_PLAIN);
  CHECK (qcow2_classify_subcluster (&std64k, host | QCOW2_OFLAG_ZERO, 0, 0) ==
         QCOW2_SC_ZERO_ALLOC);
  /* Host offset not aligned to the cluster: corruption. */
  CHECK (qcow2_classify_subcluster (&std64k, 0x50200, 0, 0) ==
         QCOW2_SC_INVALID);
  CHECK (qcow2_classify_subcluster (&std64k, QCOW2_OFLAG_COMPRESSED | 0x1234,
                                    0, 0) == QCOW2_SC_COMPRESSED);
}

static void
test_extended (void)
{
  uint64_t host = 0x50000;
  /* Subcluster 0 allocated, 1 zero, 2 unallocated. */
  uint64_t bitmap = 0x1ULL | (0x2ULL << 32);

  CHECK (qcow2_classify_subcluster (&ext64k, host, bitmap, 0) ==
         QCOW2_SC_NORMAL);
  CHECK (qcow2_classify_subcluster (&ext64k, host, bitmap, 1) ==
         QCOW2_SC_ZERO_ALLOC);
  CHECK (qcow2_classify_subcluster (&ext64k, host, bitmap, 2) ==
         QCOW2_SC_UNALLOCATED_ALLOC);
  CHECK (qcow2_classify_subcluster (&ext64k, 0, 0x2ULL << 32, 1) ==
         QCOW2_SC_ZERO_PLAIN);
  CHECK (qcow2_classify_subcluster (&ext64k, 0, 0, 31) ==
         QCOW2_SC_UNALLOCATED_PLAIN);
  /* Allocated without a host offset is invalid. */
  CHECK (qcow2_classify_subcluster (&ext64k, 0, 0x1, 0) == QCOW2_SC_INVALID);
  /* A pair 11 anywhere invalidates the whole entry. */
  CHECK (qcow2_classify_subcluster (&ext64k, host, 0x80000000ULL |
                                    (0x80000000ULL << 32), 0) ==
         QCOW2_SC_INVALID);
  /* Bit 0 of the descriptor is not a zero flag with extended L2: the
   * bitmap alone decides (QEMU ignores the bit too).
   */
  CHECK (qcow2_classify_subcluster (&ext64k, host | QCOW2_OFLAG_ZERO,
                                    0x1, 0) == QCOW2_SC_NORMAL);
  /* Compressed clusters ignore the bitmap. */
  CHECK (qcow2_classify_subcluster (&ext64k, QCOW2_OFLAG_COMPRESSED | 0x200,
                                    0xffffffffULL, 5) == QCOW2_SC_COMPRESSED);
}

static void
test_compressed_desc (void)
{
  /* 64 KiB clusters: x = 62 - (16 - 8) = 54. */
  struct qcow2_compressed_desc d;
  uint64_t e = QCOW2_OFLAG_COMPRESSED | (3ULL << 54) | 0x12345;

  qcow2_decode_compressed (&std64k, e, &d);
  CHECK (d.host_offset == 0x12345);
  /* 3 additional sectors + the first: 4 * 512 minus the offset into
   * the first sector.
   */
  CHECK (d.max_bytes == 4 * 512 - 0x145);
  /* The encoder writes what the decoder reads: 1700 bytes from 0x12345
   * end in the fourth sector (0x12345 + 1699 = 0x129e8).
   */
  CHECK (qcow2_encode_compressed (&std64k, 0x12345, 1700) == e);
  qcow2_decode_compressed (&std64k, qcow2_encode_compressed (&std64k,
                                                             0x10000, 512),
                           &d);
  CHECK (d.host_offset == 0x10000 && d.max_bytes == 512);
}

static void
test_extent_flags (void)
{
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_NORMAL, false) == 0);
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_ZERO_PLAIN, true) ==
         (QCX_EXTENT_HOLE | QCX_EXTENT_ZERO));
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_ZERO_ALLOC, true) ==
         QCX_EXTENT_ZERO);
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_UNALLOCATED_PLAIN, false) ==
         (QCX_EXTENT_HOLE | QCX_EXTENT_ZERO));
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_UNALLOCATED_PLAIN, true) ==
         QCX_EXTENT_HOLE);
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_UNALLOCATED_ALLOC, false) ==
         QCX_EXTENT_ZERO);
  CHECK (qcow2_subcluster_extent_flags (QCOW2_SC_UNALLOCATED_ALLOC, true) ==
         QCX_EXTENT_HOLE);
}

int
main (void)
{
  test_standard ();
  test_extended ();
  test_compressed_desc ();
  test_extent_flags ();
  if (failures) {
    fprintf (stderr, "test-classify: %d failure(s)\n", failures);
    return EXIT_FAILURE;
  }
  printf ("test-classify: ok\n");
  return EXIT_SUCCESS;
}

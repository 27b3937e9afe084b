/* qcow2x common library: the byte store under an image.
 *
 * An image reads its file through a `struct qcx_io`, so that the
 * format code never calls pread(2) directly and a fuzzer or a unit
 * test can substitute an in-memory file.  Two backends exist: a file
 * descriptor (qcx_io_open_file) and a caller-owned memory buffer
 * (qcx_io_open_memory).
 *
 * Strictness: qcx_io_pread() fails with EIO if any byte of the range
 * lies beyond the end of the file.  QEMU reads such bytes as zeros; we
 * treat metadata or data that points past EOF as corruption
 * (design.md §4).
 *
 * Thread safety: pread on one qcx_io may be called from many threads
 * at once.  The size is sampled at open and refreshed only by
 * qcx_io_refresh_size(), which the owner calls under its own lock.
 */
#ifndef QCX_IO_H
#define QCX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct qcx_io {
  int fd;                   /* -1 for the memory backend */
  const uint8_t *mem;       /* memory backend only (not owned) */
  uint64_t size;            /* bytes in the file */
  bool readonly;
};

/* Open PATH.  Returns 0 and fills *io, or -1 and *err. */
int qcx_io_open_file (struct qcx_io *io, const char *path, bool readonly,
                      struct qcx_err *err);

/* Wrap LEN bytes at MEM (read-only; the caller keeps ownership). */
void qcx_io_open_memory (struct qcx_io *io, const void *mem, uint64_t len);

void qcx_io_close (struct qcx_io *io);

/* Read exactly COUNT bytes at OFFSET.  WHAT names the structure being
 * read for the error message ("L2 table", "data cluster", ...).
 */
int qcx_io_pread (const struct qcx_io *io, void *buf, size_t count,
                  uint64_t offset, const char *what, struct qcx_err *err);

/* True if [offset, offset+len) lies inside the file. */
static inline bool
qcx_io_contains (const struct qcx_io *io, uint64_t offset, uint64_t len)
{
  return offset <= io->size && len <= io->size - offset;
}

#endif /* QCX_IO_H */

/* qcow2x common library: compressed cluster codecs (zlib, zstd).
 *
 * qcow2 compresses whole clusters: zlib as a raw deflate stream with a
 * 4 KiB window (QEMU's choice), zstd as one or more zstd frames
 * (qcow2.txt "compression_type").  Decompression must produce exactly
 * one cluster; a stream that ends early or is corrupt is an error.
 *
 * Threading: a struct qcx_codec_pool hands each thread its own codec
 * context and scratch buffers (thread-specific data), created on first
 * use and freed when the thread exits or the pool is destroyed, so
 * compression and decompression run in parallel without locks.
 */
#ifndef QCX_COMPRESS_H
#define QCX_COMPRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "header.h"

struct qcx_codec_pool {
  pthread_key_t key;
  size_t in_size;               /* scratch for compressed bytes */
  size_t out_size;              /* scratch for one cluster */
};

struct qcx_codec;               /* per-thread, opaque */

int qcx_codec_pool_init (struct qcx_codec_pool *pool, size_t cluster_size,
                         struct qcx_err *err);
void qcx_codec_pool_destroy (struct qcx_codec_pool *pool);

/* This thread's context, created on first use. */
struct qcx_codec *qcx_codec_get (struct qcx_codec_pool *pool,
                                 struct qcx_err *err);
uint8_t *qcx_codec_inbuf (struct qcx_codec *c);
uint8_t *qcx_codec_outbuf (struct qcx_codec *c);

/* Decompress SRC_LEN bytes at SRC into exactly DST_LEN bytes at DST. */
int qcx_decompress (struct qcx_codec *c, enum qcow2_compression_type type,
                    const uint8_t *src, size_t src_len,
                    uint8_t *dst, size_t dst_len, struct qcx_err *err);

/* Compress one cluster (SRC_LEN bytes) the way QEMU does (zlib: raw
 * deflate, 4 KiB window, so that QEMU's inflate can read it; zstd: one
 * frame) at LEVEL (0: QEMU's, the libraries' defaults; a thread's
 * context keeps the level of its first call) into at most DST_CAP
 * bytes.  *DST_LEN is the compressed size, or 0 if the data does not
 * fit in DST_CAP bytes (then it is to be stored uncompressed; not an
 * error).
 */
int qcx_compress (struct qcx_codec *c, enum qcow2_compression_type type,
                  int level, const uint8_t *src, size_t src_len,
                  uint8_t *dst, size_t dst_cap, size_t *dst_len,
                  struct qcx_err *err);

/* Is LEVEL (not 0) a level of TYPE's compressor?  Sets *MIN, *MAX. */
bool qcx_compress_level_valid (enum qcow2_compression_type type, int level,
                               int *min, int *max);

#endif /* QCX_COMPRESS_H */

/* qcow2x common library: compressed cluster codecs (see compress.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>
#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "compress.h"

struct qcx_codec {
  ZSTD_DCtx *zstd;
  z_stream zs;
  bool zs_ready;
  ZSTD_CCtx *zstd_c;            /* compression (writes with compress=) */
  z_stream zc;
  bool zc_ready;
#ifdef HAVE_LIBDEFLATE
  struct libdeflate_decompressor *deflate;
#endif
  uint8_t *in, *out;
};

static void
codec_free (void *p)
{
  struct qcx_codec *c = p;

  if (c == NULL)
    return;
  if (c->zstd)
    ZSTD_freeDCtx (c->zstd);
  if (c->zs_ready)
    inflateEnd (&c->zs);
  if (c->zstd_c)
    ZSTD_freeCCtx (c->zstd_c);
  if (c->zc_ready)
    deflateEnd (&c->zc);
#ifdef HAVE_LIBDEFLATE
  if (c->deflate)
    libdeflate_free_decompressor (c->deflate);
#endif
  free (c->in);
  free (c->out);
  free (c);
}

int
qcx_codec_pool_init (struct qcx_codec_pool *pool, size_t cluster_size,
                     struct qcx_err *err)
{
  int r;

  /* A descriptor can name at most 2 clusters of compressed bytes
   * (its sector count has cluster_bits - 8 bits).
   */
  pool->in_size = 2 * cluster_size;
  pool->out_size = cluster_size;
  r = pthread_key_create (&pool->key, codec_free);
  if (r != 0)
    return qcx_error (err, r, "pthread_key_create: %s", qcx_strerror (r));
  return 0;
}

void
qcx_codec_pool_destroy (struct qcx_codec_pool *pool)
{
  /* The key's destructor only runs at thread exit: free this thread's
   * context by hand; other threads have exited by now.
   */
  codec_free (pthread_getspecific (pool->key));
  pthread_setspecific (pool->key, NULL);
  pthread_key_delete (pool->key);
}

struct qcx_codec *
qcx_codec_get (struct qcx_codec_pool *pool, struct qcx_err *err)
{
  struct qcx_codec *c = pthread_getspecific (pool->key);

  if (c)
    return c;
  c = calloc (1, sizeof *c);
  if (c == NULL ||
      (c->in = malloc (pool->in_size)) == NULL ||
      (c->out = malloc (pool->out_size)) == NULL) {
    qcx_error (err, ENOMEM, "out of memory for a decompression context");
    codec_free (c);
    return NULL;
  }
  pthread_setspecific (pool->key, c);
  return c;
}

uint8_t *qcx_codec_inbuf (struct qcx_codec *c) { return c->in; }
uint8_t *qcx_codec_outbuf (struct qcx_codec *c) { return c->out; }

#ifdef HAVE_LIBDEFLATE
/* libdeflate inflates about twice as fast as zlib.  It succeeds only for
 * a stream that ends exactly at a full cluster; anything else (longer,
 * shorter, corrupt) is left to zlib below, whose behaviour is QEMU's.
 */
static bool
fast_inflate (struct qcx_codec *c, const uint8_t *src, size_t src_len,
              uint8_t *dst, size_t dst_len)
{
  size_t in_used;

  if (c->deflate == NULL &&
      (c->deflate = libdeflate_alloc_decompressor ()) == NULL)
    return false;
  return libdeflate_deflate_decompress_ex (c->deflate, src, src_len, dst,
                                           dst_len, &in_used, NULL) ==
    LIBDEFLATE_SUCCESS;
}
#endif

static int
inflate_cluster (struct qcx_codec *c, const uint8_t *src, size_t src_len,
                 uint8_t *dst, size_t dst_len, struct qcx_err *err)
{
  int r;

#ifdef HAVE_LIBDEFLATE
  if (fast_inflate (c, src, src_len, dst, dst_len))
    return 0;
#endif
  if (!c->zs_ready) {
    memset (&c->zs, 0, sizeof c->zs);
    /* Raw deflate, 4 KiB window: what QEMU writes. */
    if (inflateInit2 (&c->zs, -12) != Z_OK)
      return qcx_error (err, ENOMEM, "zlib: inflateInit2 failed");
    c->zs_ready = true;
  }
  else if (inflateReset (&c->zs) != Z_OK)
    return qcx_error (err, EIO, "zlib: inflateReset failed");

  c->zs.next_in = (Bytef *) src;
  c->zs.avail_in = src_len;
  c->zs.next_out = dst;
  c->zs.avail_out = dst_len;
  r = inflate (&c->zs, Z_FINISH);
  /* Success is a full cluster of output; the stream may end there or
   * still have bytes we do not need (the descriptor rounds up to
   * sectors).
   */
  if ((r == Z_STREAM_END || r == Z_OK || r == Z_BUF_ERROR) &&
      c->zs.avail_out == 0)
    return 0;
  if (r == Z_STREAM_END || r == Z_BUF_ERROR)
    return qcx_error (err, EIO, "compressed cluster (zlib) ends after %zu of "
                      "%zu bytes", dst_len - c->zs.avail_out, dst_len);
  return qcx_error (err, EIO, "compressed cluster (zlib) is corrupt: %s",
                    c->zs.msg ? c->zs.msg : "inflate failed");
}

static int
zstd_cluster (struct qcx_codec *c, const uint8_t *src, size_t src_len,
              uint8_t *dst, size_t dst_len, struct qcx_err *err)
{
  ZSTD_inBuffer in = { src, src_len, 0 };
  ZSTD_outBuffer out = { dst, dst_len, 0 };

  if (c->zstd == NULL) {
    c->zstd = ZSTD_createDCtx ();
    if (c->zstd == NULL)
      return qcx_error (err, ENOMEM, "zstd: ZSTD_createDCtx failed");
  }
  else
    ZSTD_DCtx_reset (c->zstd, ZSTD_reset_session_only);

  /* QEMU writes frames until the cluster is complete; padding to the
   * end of the last sector follows, so stop once the output is full.
   */
  while (out.pos < out.size) {
    size_t in_pos = in.pos, out_pos = out.pos;
    size_t r = ZSTD_decompressStream (c->zstd, &out, &in);

    if (ZSTD_isError (r))
      return qcx_error (err, EIO, "compressed cluster (zstd) is corrupt: %s",
                        ZSTD_getErrorName (r));
    if (in.pos == in_pos && out.pos == out_pos)
      return qcx_error (err, EIO, "compressed cluster (zstd) ends after %zu "
                        "of %zu bytes", out.pos, out.size);
  }
  return 0;
}

int
qcx_decompress (struct qcx_codec *c, enum qcow2_compression_type type,
                const uint8_t *src, size_t src_len,
                uint8_t *dst, size_t dst_len, struct qcx_err *err)
{
  switch (type) {
  case QCOW2_COMPRESSION_ZLIB:
    return inflate_cluster (c, src, src_len, dst, dst_len, err);
  case QCOW2_COMPRESSION_ZSTD:
    return zstd_cluster (c, src, src_len, dst, dst_len, err);
  }
  return qcx_error (err, ENOTSUP, "unsupported compression type %d", type);
}

bool
qcx_compress_level_valid (enum qcow2_compression_type type, int level,
                          int *min, int *max)
{
  if (type == QCOW2_COMPRESSION_ZSTD) {
    *min = ZSTD_minCLevel ();
    *max = ZSTD_maxCLevel ();
  }
  else {
    *min = 1;
    *max = 9;
  }
  return level >= *min && level <= *max;
}

static int
deflate_cluster (struct qcx_codec *c, int level,
                 const uint8_t *src, size_t src_len,
                 uint8_t *dst, size_t dst_cap, size_t *dst_len,
                 struct qcx_err *err)
{
  int r;

  if (!c->zc_ready) {
    memset (&c->zc, 0, sizeof c->zc);
    /* QEMU's parameters: readers inflate with a 4 KiB window (-12), so
     * no match may reach further back (libdeflate cannot promise that).
     */
    if (deflateInit2 (&c->zc, level ? level : Z_DEFAULT_COMPRESSION,
                      Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
      return qcx_error (err, ENOMEM, "zlib: deflateInit2 failed");
    c->zc_ready = true;
  }
  else if (deflateReset (&c->zc) != Z_OK)
    return qcx_error (err, EIO, "zlib: deflateReset failed");

  c->zc.next_in = (Bytef *) src;
  c->zc.avail_in = src_len;
  c->zc.next_out = dst;
  c->zc.avail_out = dst_cap;
  r = deflate (&c->zc, Z_FINISH);
  if (r == Z_STREAM_END)
    *dst_len = dst_cap - c->zc.avail_out;
  else if (r == Z_OK || r == Z_BUF_ERROR)
    *dst_len = 0;                       /* does not fit */
  else
    return qcx_error (err, EIO, "zlib: deflate failed (%d)", r);
  return 0;
}

static int
zstd_compress_cluster (struct qcx_codec *c, int level, const uint8_t *src,
                       size_t src_len, uint8_t *dst, size_t dst_cap,
                       size_t *dst_len, struct qcx_err *err)
{
  size_t r;

  if (c->zstd_c == NULL) {
    if ((c->zstd_c = ZSTD_createCCtx ()) == NULL)
      return qcx_error (err, ENOMEM, "zstd: ZSTD_createCCtx failed");
    r = ZSTD_CCtx_setParameter (c->zstd_c, ZSTD_c_compressionLevel,
                                level ? level : ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError (r))
      return qcx_error (err, EINVAL, "zstd: level %d: %s", level,
                        ZSTD_getErrorName (r));
  }
  r = ZSTD_compress2 (c->zstd_c, dst, dst_cap, src, src_len);
  if (ZSTD_isError (r)) {
    if (ZSTD_getErrorCode (r) == ZSTD_error_dstSize_tooSmall) {
      *dst_len = 0;
      return 0;
    }
    return qcx_error (err, EIO, "zstd: compression failed: %s",
                      ZSTD_getErrorName (r));
  }
  *dst_len = r;
  return 0;
}

int
qcx_compress (struct qcx_codec *c, enum qcow2_compression_type type,
              int level, const uint8_t *src, size_t src_len,
              uint8_t *dst, size_t dst_cap, size_t *dst_len,
              struct qcx_err *err)
{
  switch (type) {
  case QCOW2_COMPRESSION_ZLIB:
    return deflate_cluster (c, level, src, src_len, dst, dst_cap, dst_len,
                            err);
  case QCOW2_COMPRESSION_ZSTD:
    return zstd_compress_cluster (c, level, src, src_len, dst, dst_cap,
                                  dst_len, err);
  }
  return qcx_error (err, ENOTSUP, "unsupported compression type %d", type);
}

/* nbdkit-qcow2x-plugin: image creation parameters (create=true ...).
 *
 * The plugin's .config hands every key to create_config() first; the
 * image is created (through common/create.h) in .get_ready, before the
 * image is opened.  Single-threaded: called only during configuration
 * and start-up.
 */
#ifndef QCX_PLUGIN_CREATE_H
#define QCX_PLUGIN_CREATE_H

/* Returns 1 if KEY is a creation parameter (and it was valid), 0 if it
 * is not one, -1 on error (after nbdkit_error).
 */
int create_config (const char *key, const char *value);

/* Check the creation parameters once all are known. */
int create_config_complete (void);

/* If create=true was given, create FILENAME.  Returns 0 or -1 (after
 * nbdkit_error).
 */
int create_image_if_requested (const char *filename);

void create_unload (void);

#define create_config_help_text                                          \
  "create=true            Create the image at start-up (refuses an\n"     \
  "                       existing file unless overwrite=true).\n"        \
  "size=<SIZE>            Virtual size of the new image (required).\n"    \
  "cluster-size=<SIZE>    512 to 2M, a power of two (default 64K).\n"     \
  "extended-l2=true|false Subclusters (default: on if cluster-size>=16K).\n" \
  "compression=zlib|zstd  Compression type (default zlib).\n"             \
  "backing=<FILE>         Backing file name, stored as given.\n"          \
  "backing-format=qcow2|raw  Backing file format (required with backing=).\n" \
  "preallocation=off|metadata|falloc|full  (default off)\n"              \
  "refcount-bits=<N>      1, 2, 4, ..., 64 (default 16).\n"              \
  "compat=0.10|1.1        qcow2 version 2 or 3 (default 1.1).\n"          \
  "overwrite=true         Replace an existing file."

#endif /* QCX_PLUGIN_CREATE_H */

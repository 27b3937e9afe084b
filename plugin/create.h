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
  "create=true            Create the image at start-up (see the man page\n" \
  "                       for size=, cluster-size=, extended-l2=, ...)."

#endif /* QCX_PLUGIN_CREATE_H */

/* nbdkit-qcow2x-plugin: image creation parameters (see create.h). */
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "create.h"

int
create_config (const char *key, const char *value)
{
  (void) value;
  if (strcmp (key, "create") == 0) {
    nbdkit_error ("create=: image creation is not supported yet");
    return -1;
  }
  return 0;
}

int
create_config_complete (void)
{
  return 0;
}

int
create_image_if_requested (const char *filename)
{
  (void) filename;
  return 0;
}

void
create_unload (void)
{
}

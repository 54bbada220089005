/* What io's files share: libtiff handles whose errors land in a buffer of their own (never
 * in libtiff's global handlers, which threads would garble). */
#ifndef CM_IO_INTERNAL_H
#define CM_IO_INTERNAL_H

#include <tiffio.h>

typedef struct cm__tiff_msg {
    char text[256];
} cm__tiff_msg_t;

/* TIFFOpenExt (fd < 0) or TIFFFdOpenExt (fd >= 0) with errors recorded in *msg (the last
 * one wins) and warnings dropped. NULL on failure, with the reason in msg->text. */
TIFF *cm__tiff_open(const char *path, const char *mode, int fd, cm__tiff_msg_t *msg);

#endif

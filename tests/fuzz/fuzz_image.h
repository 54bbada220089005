/* What the image fuzz targets (fuzz_tiff, fuzz_jpeg, fuzz_png) share: each is one call to
 * cm_fuzz_image with its format (fuzz_image.c). */
#ifndef CM_FUZZ_IMAGE_H
#define CM_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Opens size bytes at data from memory (name stands for the path in messages); when they are
 * an image of format, prepares it into a scratch store, reads every chunk and, when it is
 * small, fits and remaps it. Aborts when a failure is not a bad input with a reason. Returns
 * 0, or -1 for an image of another format (which libFuzzer then keeps out of the corpus). */
int cm_fuzz_image(const uint8_t *data, size_t size, cm_file_format_t format, const char *name);

#endif

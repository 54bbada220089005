/* Fuzz target: a TIFF from memory, opened through libtiff's client callbacks, every chunk
 * decoded, small images fitted and remapped (fuzz_image.c). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cm_fuzz_image(data, size, CM_FILE_TIFF, "fuzz.tif");
}

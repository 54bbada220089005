/* Fuzz target: a PNG from memory, decoded by libpng into the spill store (an interlaced one
 * within the budget), every chunk read back, small images fitted and remapped
 * (fuzz_image.c). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cm_fuzz_image(data, size, CM_FILE_PNG, "fuzz.png");
}

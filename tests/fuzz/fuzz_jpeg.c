/* Fuzz target: a JPEG from memory, decoded by libjpeg-turbo into the spill store (a
 * progressive one within the budget), every chunk read back, small images fitted and
 * remapped (fuzz_image.c). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cm_fuzz_image(data, size, CM_FILE_JPEG, "fuzz.jpg");
}

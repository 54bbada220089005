/* fuzz_png's mutations: libFuzzer's own, then (most of the time) every chunk's CRC made right
 * again. Without it nearly every mutation inside a chunk would stop at libpng's CRC check,
 * which the fuzzer cannot learn to pass: libpng is not instrumented, so comparisons there
 * give it no feedback. Linked into the libFuzzer target only, not into its replay. */
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 16 == 0) return size; /* some bad CRCs still reach the reader */
    /* after the signature: length, type, data, CRC (of type and data), while they fit */
    for (size_t at = 8; size >= 12 && at <= size - 12;) {
        uint32_t len = get32(data + at);
        if (len > size - 12 - at) break;
        uint32_t crc = (uint32_t)crc32(0, data + at + 4, len + 4);
        uint8_t *p = data + at + 8 + len;
        p[0] = (uint8_t)(crc >> 24), p[1] = (uint8_t)(crc >> 16), p[2] = (uint8_t)(crc >> 8);
        p[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
    return size;
}

/* pycocotools' rleFrString one character at a time, shared by the RLE kernels (_rle.c: decoding) and the results
 * reader (_maskjson.c: each mask's area while its string is read).
 *
 * Each count is written in 5-bit groups, '0' + value, 0x20 = another group follows, 0x10 = negative in the last
 * group; from the fourth count on (m > 2) it is the difference to the count two before. A string is unusual (left
 * to pycocotools, whose int shifts would make its value depend on the compiler) at a byte outside '0'..'o', a
 * count of more than six groups, or one cut off at the string's end (RleScan.k != 0 there).
 */
#ifndef CONVZOO_RLESCAN_H
#define CONVZOO_RLESCAN_H

#include <stdint.h>

typedef struct {
    int64_t x;     /* the count being read */
    int k;         /* its groups read so far */
    int64_t m;     /* counts complete */
    uint32_t before, last;  /* the counts m - 2 and m - 1 */
} RleScan;

/* Feed one byte: 0 while a count goes on, 1 when one is complete (its value in *count, its index scan->m - 1),
 * -1 for an unusual string. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int rle_char(RleScan *scan, unsigned char byte, uint32_t *count) {
    int c = (int)byte - 48;
    if (c < 0 || c > 63 || scan->k >= 6) return -1;
    scan->x |= (int64_t)(c & 0x1f) << (5 * scan->k);
    scan->k++;
    if (c & 0x20) return 0;
    if (c & 0x10) scan->x |= -((int64_t)1 << (5 * scan->k));
    if (scan->m > 2) scan->x += (int64_t)scan->before;  /* the count two before */
    *count = (uint32_t)scan->x;
    scan->before = scan->last, scan->last = *count;
    scan->m++, scan->x = 0, scan->k = 0;
    return 1;
}

#endif

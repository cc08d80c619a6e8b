/* Mask results for the compiled reader (one extension with _boxjson.c): the "segmentation" member of a result
 * (a compressed RLE dict), its counts appended to one buffer and its area measured as they are read. See read_masks
 * below.
 */
#include "_boxjson.h"
#include "_rlescan.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* A JSON integer at p: its value in *value, its end in *end. */
static int integer(const char *p, const char *stop, const char **end, int64_t *value) {
    int integral, status = number(p, stop, end, &integral);
    if (status != OK) return status;
    return integral && to_int64(p, *end, value) == OK ? OK : BAD;
}

/* One byte of an RLE string into the scan, its count added to *area when it is an odd one (rleArea, in uint
 * arithmetic); *usual cleared for a string pycocotools must measure (see _rlescan.h). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void feed(RleScan *scan, unsigned char byte, uint32_t *area, int *usual) {
    uint32_t count;
    int got = rle_char(scan, byte, &count);
    if (got < 0) *usual = 0, *scan = (RleScan){0, 0, 0, 0, 0};
    else if (got && !(scan->m & 1)) *area += count;  /* count m - 1 is odd */
}

/* A compressed RLE {"size": [h, w], "counts": "..."} at p (exactly these two members, in either order, h and w
 * integers >= 0); the counts, unescaped, appended to *counts, their area in out->area. Only the escapes \\ and \/
 * are taken (an RLE string's bytes are '0'..'o'; the general reader decides anything else). */
int segmentation(const char *p, const char *stop, const char **end, Record *out, Column *counts) {
    int seen = 0, status;
    if (*p != '{') return p >= stop ? MORE : BAD;
    p = skip_space(p + 1);
    for (;;) {
        if (p >= stop) return MORE;
        if (*p != '"') return BAD;
        int field = !strncmp(p, "\"size\"", 6) ? 1 : !strncmp(p, "\"counts\"", 8) ? 2 : 0;
        if (!field) return stop - p < 8 ? MORE : BAD;
        if (field & seen) return BAD;
        seen |= field;
        p = skip_space(p + (field == 1 ? 6 : 8));
        if (p >= stop) return MORE;
        if (*p != ':') return BAD;
        p = skip_space(p + 1);
        if (p >= stop) return MORE;
        if (field == 1) {
            if (*p != '[') return BAD;
            for (int i = 0; i < 2; i++) {
                p = skip_space(p + 1);
                if ((status = integer(p, stop, &p, i ? &out->w : &out->h)) != OK) return status;
                p = skip_space(p);
                if (p >= stop) return MORE;
                if (*p != (i ? ']' : ',')) return BAD;
            }
            if (out->h < 0 || out->w < 0) return BAD;
            p++;
        } else {
            if (*p != '"') return BAD;
            const char *q = p + 1, *run = q;  /* not p: its address is taken above, which keeps it out of registers */
            RleScan scan = {0, 0, 0, 0, 0};
            uint32_t area = 0;
            int usual = 1;
            for (;;) {  /* the buffer ends in a NUL: stop is checked only at bytes outside the string's usual ones */
                unsigned char byte = (unsigned char)*q;
                if (byte >= '0' && byte <= 'o' && byte != '\\') {
                    feed(&scan, byte, &area, &usual);
                    q++;
                    continue;
                }
                if (byte == '"') break;
                if (q >= stop) return MORE;
                if (byte < 0x20 || byte >= 0x80) return BAD;
                if (byte == '\\') {
                    if (q + 1 >= stop) return MORE;
                    if (q[1] != '\\' && q[1] != '/') return BAD;
                    if (push_bytes(counts, run, (size_t)(q - run)) || push_bytes(counts, q + 1, 1)) return BAD;
                    feed(&scan, (unsigned char)q[1], &area, &usual);
                    run = q + 2, q += 2;
                    continue;
                }
                usual = 0, q++;  /* JSON's, but not an RLE string's */
            }
            if (push_bytes(counts, run, (size_t)(q - run))) return BAD;
            out->area = usual && !scan.k ? (double)area : NAN;
            p = q + 1;
        }
        p = skip_space(p);
        if (p >= stop) return MORE;
        if (*p == '}') break;
        if (*p != ',') return BAD;
        p = skip_space(p + 1);
    }
    if (seen != 3) return BAD;
    *end = p + 1;
    return OK;
}

/* The bytes object of the file's size (at least 1) that the counts are written into (they are never longer than
 * the file; pages never written are never touched), NULL with an exception, or Py_None for a path that is not a
 * regular file. */
static PyObject *counts_buffer(PyObject *arg) {
    struct stat info;
    if (!PyBytes_Check(arg)) return PyErr_Format(PyExc_TypeError, "the file's path must be bytes");
    if (stat(PyBytes_AS_STRING(arg), &info) || !S_ISREG(info.st_mode) || info.st_size >= PY_SSIZE_T_MAX)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(NULL, (Py_ssize_t)info.st_size + 1);
}

/* read_masks(path: bytes) -> (image_ids, category_ids, scores, boxes, counts, ends, heights, widths, areas, others)
 * or None: int64/float64 bytearrays (boxes empty when no record has a "bbox", float64[D * 4] when all have one; some
 * with and some without: None), the masks packed (counts: bytes, every RLE string back to back, in file order; ends
 * int64[D] where each ends; heights and widths int64[D]), their areas (float64[D], NaN for a string pycocotools
 * must measure), and how many other members were skipped. None for anything the general readers must decide (as
 * read_boxes), and for a path that is not a regular file. The whole read runs without the GIL. */
PyObject *read_masks(PyObject *Py_UNUSED(self), PyObject *arg) {
    Column columns[COLUMNS] = {{0}};
    long others = 0, boxes = 0;
    PyObject *counts = counts_buffer(arg), *result = NULL;
    if (counts == NULL || counts == Py_None) return counts;
    columns[7] = (Column){PyBytes_AS_STRING(counts), 0, (size_t)PyBytes_GET_SIZE(counts), 1};
    int status = parse_file(arg, columns, &others, 1, &boxes);
    columns[7].data = NULL;  /* counts' own */
    if (status == OK && _PyBytes_Resize(&counts, (Py_ssize_t)columns[7].used) < 0) status = -1;  /* counts is NULL */
    if (status == OK) {
        PyObject *items[8];
        int ok = 1;
        for (int i = 0; i < 8; i++) ok &= (items[i] = column_bytes(&columns[i < 7 ? i : 8])) != NULL;
        result = ok ? Py_BuildValue("(NNNNONNNNl)", items[0], items[1], items[2], items[3], counts, items[4], items[5],
                                    items[6], items[7], others) : NULL;
        if (!ok)
            for (int i = 0; i < 8; i++) Py_XDECREF(items[i]);
    }
    Py_XDECREF(counts);
    for (int i = 0; i < COLUMNS; i++) PyMem_RawFree(columns[i].data);
    if (status == BAD && !PyErr_Occurred()) Py_RETURN_NONE;
    return result;
}

/* Mask results for the compiled reader (one extension with _boxjson.c): the "segmentation" member of a result
 * (a compressed RLE dict) and the RLE dicts built from what the scan collected. See read_masks below.
 */
#include "_boxjson.h"

#include <string.h>

/* A JSON integer at p: its value in *value, its end in *end. */
static int integer(const char *p, const char *stop, const char **end, int64_t *value) {
    int integral, status = number(p, stop, end, &integral);
    if (status != OK) return status;
    return integral && to_int64(p, *end, value) == OK ? OK : BAD;
}

/* A compressed RLE {"size": [h, w], "counts": "..."} at p (exactly these two members, in either order, h and w
 * integers >= 0); the counts, unescaped, appended to *counts. Only the escapes \\ and \/ are taken (an RLE string's
 * bytes are '0'..'o'; the general reader decides anything else). */
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
            const char *run = ++p;
            for (;; p++) {
                if (p >= stop) return MORE;
                if (*p == '"') break;
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80) return BAD;
                if (*p == '\\') {
                    if (p + 1 >= stop) return MORE;
                    if (p[1] != '\\' && p[1] != '/') return BAD;
                    if (push_bytes(counts, run, (size_t)(p - run)) || push_bytes(counts, p + 1, 1)) return BAD;
                    run = p + 2, p++;
                }
            }
            if (push_bytes(counts, run, (size_t)(p - run))) return BAD;
            p++;
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

/* Append the pending mask results' RLE dicts {"size": [h, w], "counts": str} to list, in file order; 0, or -1 with an
 * exception. Consecutive records of one size share one size list (as equal as separate ones; 72 bytes a record
 * less). Needs the GIL. */
static int rle_dicts(const Column columns[8], PyObject *list) {
    Py_ssize_t n = (Py_ssize_t)(columns[4].used / 8);
    const int64_t *ends = (const int64_t *)columns[4].data, *h = (const int64_t *)columns[5].data;
    const int64_t *w = (const int64_t *)columns[6].data;
    PyObject *size_key = PyUnicode_InternFromString("size"), *counts_key = PyUnicode_InternFromString("counts");
    PyObject *size = NULL;
    int status = size_key && counts_key ? 0 : -1;
    int collecting = PyGC_Disable();  /* 100,000s of new dicts would start the cycle collector over and over */
    for (Py_ssize_t i = 0; status == 0 && i < n; i++) {
        int64_t start = i ? ends[i - 1] : 0;
        if (!size || h[i] != h[i - 1] || w[i] != w[i - 1]) {
            Py_XDECREF(size);
            size = Py_BuildValue("[LL]", (long long)h[i], (long long)w[i]);
        }
        PyObject *dict = PyDict_New();
        PyObject *text = PyUnicode_DecodeASCII(columns[7].data + start, (Py_ssize_t)(ends[i] - start), NULL);
        status = !dict || !size || !text || PyDict_SetItem(dict, size_key, size) ||
                 PyDict_SetItem(dict, counts_key, text) || PyList_Append(list, dict) ? -1 : 0;
        Py_XDECREF(text), Py_XDECREF(dict);
    }
    if (collecting) PyGC_Enable();
    Py_XDECREF(size), Py_XDECREF(size_key), Py_XDECREF(counts_key);
    return status;
}

/* Mask results: turn the pending counts into dicts (taking the GIL) once they hold FLUSH bytes, so that the text of
 * all the masks never lies in memory beside their strings. */

int flush(Column columns[8], PyObject *list) {
    PyGILState_STATE gil = PyGILState_Ensure();
    int status = rle_dicts(columns, list);
    if (status) PyErr_Clear();  /* the caller reads the file again the general way */
    PyGILState_Release(gil);
    for (int i = 4; i < 8; i++) columns[i].used = 0;
    return status ? BAD : OK;
}

/* read_masks(path: bytes) -> (image_ids, category_ids, scores, boxes, rles, others) or None: int64/float64
 * bytearrays (boxes empty when no record has a "bbox", float64[D * 4] when all have one; some with and some
 * without: None), the RLE dicts {"size": [h, w], "counts": str} in file order, and how many other members were
 * skipped. None for anything the general readers must decide (as read_boxes). */
PyObject *read_masks(PyObject *Py_UNUSED(self), PyObject *arg) {
    Column columns[8] = {{0}};
    long others = 0, boxes = 0;
    PyObject *rles = PyList_New(0);
    if (!rles) return NULL;
    int status = parse_file(arg, columns, &others, rles, &boxes);
    PyObject *result = NULL;
    if (status == OK && rle_dicts(columns, rles) < 0) status = -1;
    if (status == OK) {
        PyObject *items[5] = {column_bytes(&columns[0]), column_bytes(&columns[1]), column_bytes(&columns[2]),
                              column_bytes(&columns[3]), rles};
        rles = NULL;
        int ok = items[0] && items[1] && items[2] && items[3] && items[4];
        result = ok ? Py_BuildValue("(NNNNNl)", items[0], items[1], items[2], items[3], items[4], others) : NULL;
        if (!ok)
            for (int i = 0; i < 5; i++) Py_XDECREF(items[i]);
    }
    Py_XDECREF(rles);
    for (int i = 0; i < 8; i++) PyMem_RawFree(columns[i].data);
    if (status == BAD && !PyErr_Occurred()) Py_RETURN_NONE;
    return result;
}


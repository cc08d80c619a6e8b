/* COCO box results from a JSON file straight into arrays: the optional compiled reader of reading.py.
 *
 * read_boxes(path: bytes) -> (image_ids, category_ids, scores, boxes, others) or None: bytearrays of int64[D],
 * int64[D], float64[D] and float64[D * 4], and how many other members were skipped. The file must be one JSON
 * array of objects, each with exactly one integer "image_id" and "category_id" (no fraction or exponent, within
 * int64), a numeric "score" and a "bbox" of four numbers; any other member is skipped whatever its value (checked
 * as strictly as json checks it; strings with bytes beyond ASCII are left to the general reader, which checks
 * their UTF-8). Anything else (string ids, a missing or repeated field, a malformed document, a file that cannot
 * be read) returns None, and the caller reads the file again the general way, whose errors name
 * the record. Numbers are converted as json and then float() convert them (see to_double), so the values are bit
 * for bit those of the other readers. The file is read 4 MB at a time (a record longer than the look-ahead grows the
 * buffer), so the text never lies in memory whole. The same scan reads mask results for read_masks (_maskjson.c).
 */
#include "_boxjson.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef BLOCK
#define BLOCK (1 << 22)  /* bytes read at a time (a smaller one can be compiled in to test the block ends) */
#endif


int push(Column *c, const void *value) {
    if (c->used + 8 > c->size) {
        size_t size = c->size ? 2 * c->size : 1 << 16;
        char *data = PyMem_RawRealloc(c->data, size);
        if (!data) return -1;
        c->data = data, c->size = size;
    }
    memcpy(c->data + c->used, value, 8);
    c->used += 8;
    return 0;
}

int push_bytes(Column *c, const char *bytes, size_t n) {  /* bytes, not 8-byte values */
    if (c->used + n > c->size) {
        if (c->fixed) return -1;
        size_t size = c->size ? 2 * c->size : 1 << 16;
        while (size < c->used + n) size *= 2;
        char *data = PyMem_RawRealloc(c->data, size);
        if (!data) return -1;
        c->data = data, c->size = size;
    }
    memcpy(c->data + c->used, bytes, n);
    c->used += n;
    return 0;
}

typedef struct { FILE *file; char *buf; size_t len, cap, pos; int eof; } Reader;

/* Make at least `need` bytes from pos available (fewer only at the end of the file); -1 on a read error. */
static int fill(Reader *r, size_t need) {
    if (r->len - r->pos >= need || r->eof) return 0;
    if (r->pos) memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos, r->pos = 0;
    while (r->len < need && !r->eof) {
        if (r->cap - r->len < BLOCK) {
            char *buf = PyMem_RawRealloc(r->buf, r->cap + BLOCK + 1);
            if (!buf) return -1;
            r->buf = buf, r->cap += BLOCK;
        }
        size_t got = fread(r->buf + r->len, 1, r->cap - r->len, r->file);
        if (got == 0) {
            if (ferror(r->file)) return -1;
            r->eof = 1;
        }
        r->len += got;
    }
    r->buf[r->len] = '\0';  /* a sentinel: every scan below stops at it */
    return 0;
}


const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

/* A JSON number at *p: its end in *end; BAD when it is not one, MORE when it touches the buffer's end. */
int number(const char *p, const char *stop, const char **end, int *integral) {
    const char *q = p;
    *integral = 1;
    if (*q == '-') q++;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') while (*q >= '0' && *q <= '9') q++;
    else return q >= stop ? MORE : BAD;
    if (*q == '.') {
        *integral = 0, q++;
        if (!(*q >= '0' && *q <= '9')) return q >= stop ? MORE : BAD;
        while (*q >= '0' && *q <= '9') q++;
    }
    if (*q == 'e' || *q == 'E') {
        *integral = 0, q++;
        if (*q == '+' || *q == '-') q++;
        if (!(*q >= '0' && *q <= '9')) return q >= stop ? MORE : BAD;
        while (*q >= '0' && *q <= '9') q++;
    }
    if (q >= stop) return MORE;  /* the number may go on in the next block */
    *end = q;
    return OK;
}

static const double POWERS[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The double nearest to the JSON number [p, end). Clinger's fast path (W. D. Clinger, "How to read floating point
 * numbers accurately", PLDI 1990): when the decimal digits w of a number without exponent fit a double exactly
 * (w <= 2^53) and so does 10^k for its k <= 22 fraction digits, w / 10^k is one correctly rounded IEEE operation
 * and so the correctly rounded value (on SSE2 and every platform without extended-precision doubles). Otherwise
 * PyOS_string_to_double (David Gay's correctly rounded strtod). Both give what float() gives, bit for bit. */
static int to_double(const char *p, const char *end, double *value) {
    const char *q = p;
    int negative = *q == '-', fraction = 0, significant = 0, dot = 0;
    uint64_t w = 0;
    for (q += negative; q < end; q++) {
        if (*q == '.') { dot = 1; continue; }
        if (*q < '0' || *q > '9') break;  /* an exponent: the general path */
        if (w || *q != '0') significant++;
        if (significant > 19) break;
        w = 10 * w + (uint64_t)(*q - '0');
        fraction += dot;
    }
    if (q == end && w <= ((uint64_t)1 << 53) && fraction <= 22) {
        double x = (double)w / POWERS[fraction];
        *value = negative && (w || dot) ? -x : x;  /* "-0" is json's int 0, so +0.0; "-0.0" is -0.0 */
        return OK;
    }
    char *parsed;
    PyGILState_STATE gil = PyGILState_Ensure();  /* the parse runs without the GIL; this needs it (PyMem_Malloc) */
    *value = PyOS_string_to_double(p, &parsed, NULL);  /* overflow gives inf, which the caller refuses */
    int status = *value == -1.0 && PyErr_Occurred() ? BAD : parsed == end ? OK : BAD;
    PyErr_Clear();
    PyGILState_Release(gil);
    return status;
}

int to_int64(const char *p, const char *end, int64_t *value) {
    int negative = *p == '-';
    uint64_t v = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += negative; p < end; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (limit - digit) / 10) return BAD;
        v = 10 * v + digit;
    }
    *value = negative ? (int64_t)(0 - v) : (int64_t)v;
    return OK;
}

/* Skip one JSON value of any kind at p, checked as strictly as json checks it; its end in *end. */
static int skip_value(const char *p, const char *stop, const char **end, int depth) {
    int status, integral;
    if (depth > 256) return BAD;
    p = skip_space(p);
    if (p >= stop) return MORE;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (p >= stop) return MORE;
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80) return BAD;  /* control, non-ASCII */
            if (*p == '\\') {
                p++;
                if (p >= stop || (*p == 'u' && stop - p < 5)) return MORE;
                if (*p == 'u') {
                    for (int i = 1; i <= 4; i++)
                        if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return BAD;
                    p += 4;
                } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                    return BAD;
                }
            }
        }
        *end = p + 1;
        return OK;
    }
    if (*p == '[' || *p == '{') {
        char close = *p == '[' ? ']' : '}';
        p = skip_space(p + 1);
        if (p >= stop) return MORE;
        if (*p == close) { *end = p + 1; return OK; }
        for (;;) {
            if (close == '}') {  /* a member: "key": value */
                if (*p != '"') return p >= stop ? MORE : BAD;
                if ((status = skip_value(p, stop, &p, depth + 1)) != OK) return status;
                p = skip_space(p);
                if (p >= stop) return MORE;
                if (*p != ':') return BAD;
                p++;
            }
            if ((status = skip_value(p, stop, &p, depth + 1)) != OK) return status;
            p = skip_space(p);
            if (p >= stop) return MORE;
            if (*p == close) { *end = p + 1; return OK; }
            if (*p != ',') return BAD;
            p = skip_space(p + 1);
        }
    }
    if (*p == '-' || (*p >= '0' && *p <= '9')) return number(p, stop, end, &integral);
    for (int i = 0; i < 3; i++) {
        const char *word = (const char *[]){"true", "false", "null"}[i];
        size_t length = strlen(word);
        if (!strncmp(p, word, length)) { *end = p + length; return OK; }
    }
    return stop - p < 5 ? MORE : BAD;
}


/* One result object starting at p ('{'); its end in *end. counts: NULL for box results (image_id, category_id,
 * score and bbox required), else where mask results' counts go (segmentation required, bbox optional). */
static int record(const char *p, const char *stop, const char **end, Record *out, Column *counts) {
    int seen = 0, status, integral;
    out->others = 0;
    p = skip_space(p + 1);
    if (*p == '}') return p >= stop ? MORE : BAD;
    for (;;) {
        if (p >= stop) return MORE;
        if (*p != '"') return BAD;
        const char *key = ++p;
        while (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80) p++;
        if (p >= stop) return MORE;
        if (*p != '"') return BAD;  /* an escape, a control or non-ASCII byte: the general reader decides */
        size_t length = (size_t)(p - key);
        p = skip_space(p + 1);
        if (p >= stop) return MORE;
        if (*p != ':') return BAD;
        p = skip_space(p + 1);
        if (p >= stop) return MORE;
        int field = length == 8 && !memcmp(key, "image_id", 8) ? 1
                    : length == 11 && !memcmp(key, "category_id", 11) ? 2
                    : length == 5 && !memcmp(key, "score", 5) ? 4
                    : length == 4 && !memcmp(key, "bbox", 4) ? 8
                    : counts && length == 12 && !memcmp(key, "segmentation", 12) ? 16 : 0;
        if (field & seen) return BAD;  /* a repeated field: json keeps the last, this reader does not guess */
        seen |= field;
        const char *q;
        if (field == 1 || field == 2) {
            if ((status = number(p, stop, &q, &integral)) != OK) return status;
            if (!integral || to_int64(p, q, field == 1 ? &out->image : &out->category) != OK) return BAD;
        } else if (field == 4) {
            if ((status = number(p, stop, &q, &integral)) != OK) return status;
            if (to_double(p, q, &out->score) != OK) return BAD;
        } else if (field == 8) {
            if (*p != '[') return BAD;
            q = p + 1;
            for (int i = 0; i < 4; i++) {
                const char *start = skip_space(q);
                if ((status = number(start, stop, &q, &integral)) != OK) return status;
                if (to_double(start, q, &out->box[i]) != OK) return BAD;
                q = skip_space(q);
                if (q >= stop) return MORE;
                if (*q != (i < 3 ? ',' : ']')) return BAD;
                q++;
            }
        } else if (field == 16) {
            if ((status = segmentation(p, stop, &q, out, counts)) != OK) return status;
        } else if ((status = skip_value(p, stop, &q, 0)) != OK) {
            return status;
        } else {
            out->others++;
        }
        p = skip_space(q);
        if (p >= stop) return MORE;
        if (*p == '}') break;
        if (*p != ',') return BAD;
        p = skip_space(p + 1);
    }
    out->has_box = (seen & 8) != 0;
    if (seen != (counts ? 23 : 15) && seen != (counts ? 31 : 15)) return BAD;
    *end = p + 1;
    return OK;
}

/* The file's records into columns: image, category, score, box (4 a record), and for mask results (masks) the
 * counts' ends (int64, in columns[7]'s bytes), h, w, the counts' bytes and the areas (float64). Mask results must
 * all have a box or none. */
static int parse(Reader *r, Column columns[COLUMNS], long *others, int masks, long *boxes) {
    const char *p, *end;
    Record rec;
    *boxes = 0;
    if (fill(r, 1) < 0) return BAD;
    p = skip_space(r->buf);
    if (*p != '[') return BAD;
    r->pos = (size_t)(p + 1 - r->buf);
    for (int first = 1;; first = 0) {
        size_t need = 4096;
        int status;
        for (;;) {  /* the separator and one record, growing the window until the record fits */
            if (fill(r, need) < 0) return BAD;
            const char *stop = r->buf + r->len;
            p = skip_space(r->buf + r->pos);
            if (p < stop && *p == ']') { end = p + 1; status = OK; break; }
            if (!first && p < stop) {
                if (*p != ',') return BAD;
                p = skip_space(p + 1);
            }
            size_t mark = columns[7].used;
            status = p >= stop ? MORE : *p == '{' ? record(p, stop, &end, &rec, masks ? &columns[7] : NULL) : BAD;
            if (status != MORE) break;
            columns[7].used = mark;  /* the record is read again from its start */
            if (r->eof) return BAD;
            need = 2 * (r->len - r->pos) + 4096;
        }
        if (status != OK) return BAD;
        r->pos = (size_t)(end - r->buf);
        if (end[-1] == ']') break;
        *others += rec.others;
        if (push(&columns[0], &rec.image) || push(&columns[1], &rec.category) || push(&columns[2], &rec.score))
            return BAD;
        for (int i = 0; i < 4 && rec.has_box; i++)
            if (push(&columns[3], &rec.box[i])) return BAD;
        *boxes += rec.has_box;
        if (masks) {
            int64_t ends = (int64_t)columns[7].used;
            if (push(&columns[4], &ends) || push(&columns[5], &rec.h) || push(&columns[6], &rec.w) ||
                push(&columns[8], &rec.area))
                return BAD;
        }
    }
    if (masks && *boxes && (size_t)*boxes * 8 != columns[0].used) return BAD;  /* some with a box, some without */
    for (;;) {  /* only white space may follow the array */
        if (fill(r, 1) < 0) return BAD;
        p = skip_space(r->buf + r->pos);
        if (p < r->buf + r->len) return BAD;
        if (r->eof) return OK;
        r->pos = r->len;
    }
}

/* Parse the file at path (bytes) into columns without the GIL; OK, or BAD for anything the caller reads again. */
int parse_file(PyObject *arg, Column columns[COLUMNS], long *others, int masks, long *boxes) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "the file's path must be bytes");
        return -1;
    }
    const char *path = PyBytes_AS_STRING(arg);
    if (strlen(path) != (size_t)PyBytes_GET_SIZE(arg)) return BAD;  /* a NUL inside: not a path fopen reads */
    Reader r = {0};
    int status = BAD;
    r.file = fopen(path, "rb");
    if (r.file) {
        Py_BEGIN_ALLOW_THREADS  /* other Python threads run meanwhile (the caller reads the ground truth) */
        status = parse(&r, columns, others, masks, boxes);
        Py_END_ALLOW_THREADS
        fclose(r.file);
    }
    PyMem_RawFree(r.buf);
    return status;
}

PyObject *column_bytes(const Column *c) {  /* bytearrays: numpy's views of them are writable */
    return PyByteArray_FromStringAndSize(c->data ? c->data : "", (Py_ssize_t)c->used);
}

static PyObject *read_boxes(PyObject *Py_UNUSED(self), PyObject *arg) {
    Column columns[COLUMNS] = {{0}};
    long others = 0, boxes = 0;
    int status = parse_file(arg, columns, &others, 0, &boxes);
    PyObject *result = status == OK ? PyTuple_New(5) : NULL;
    for (int i = 0; result && i < 4; i++) {
        PyObject *column = column_bytes(&columns[i]);
        if (!column) Py_CLEAR(result);
        else PyTuple_SET_ITEM(result, i, column);
    }
    if (result) {
        PyObject *count = PyLong_FromLong(others);
        if (!count) Py_CLEAR(result);
        else PyTuple_SET_ITEM(result, 4, count);
    }
    for (int i = 0; i < COLUMNS; i++) PyMem_RawFree(columns[i].data);
    if (status == BAD && !PyErr_Occurred()) Py_RETURN_NONE;
    return result;
}

static PyMethodDef methods[] = {
    {"read_boxes", read_boxes, METH_O, "COCO box results of a JSON file as int64/float64 bytearrays and a count of skipped members, or None."},
    {"read_masks", read_masks, METH_O,
     "COCO mask results: id, score and box bytearrays, the packed RLEs, their areas, a count of skipped members; "
     "or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_boxjson", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__boxjson(void) { return PyModule_Create(&module); }

/* COCO polygons to compressed RLEs, compiled: what pycocotools' frPyObjects (rleFrPoly, rleToString) and merge
 * (rleMerge, union) make of them, byte for byte (tested), for masks.py, on threads without a Python call per
 * polygon. See polygons() below for the call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_parallel.h"

typedef struct { uint32_t *v; size_t n, cap; } Counts;

static int grow(Counts *c, size_t need) {
    if (need <= c->cap) return 0;
    size_t cap = c->cap ? 2 * c->cap : 64;
    while (cap < need) cap *= 2;
    uint32_t *v = realloc(c->v, cap * sizeof(uint32_t));
    if (!v) return -1;
    c->v = v, c->cap = cap;
    return 0;
}

/* Sort n uints ascending (what pycocotools' qsort with uintCompare gives: equal values are indistinguishable, so
 * any correct sort gives the same array): insertion sort for a few, else four 8-bit LSD radix passes via tmp. */
static void sort_uints(uint32_t *a, uint32_t *tmp, size_t n) {
    if (n < 32) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = a[i];
            size_t j = i;
            while (j > 0 && a[j - 1] > x) a[j] = a[j - 1], j--;
            a[j] = x;
        }
        return;
    }
    uint32_t *from = a, *to = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((from[i] >> shift) & 0xff) + 1]++;
        if (count[((from[0] >> shift) & 0xff) + 1] == n) continue;  /* one digit everywhere: nothing moves */
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) to[count[(from[i] >> shift) & 0xff]++] = from[i];
        uint32_t *swap = from;
        from = to, to = swap;
    }
    if (from != a) memcpy(a, from, n * sizeof *a);
}

/* rleFrPoly of the k points xy (x0, y0, x1, ...) into out; 1 for a polygon left to pycocotools (two equal
 * consecutive points, where rleFrPoly's 0 / 0 would make the result depend on the compiler), -1 OOM. */
static int from_polygon(const double *xy, size_t k, size_t h, size_t w, Counts *out) {
    const double scale = 5;
    int *x = malloc(sizeof(int) * (k + 1)), *y = malloc(sizeof(int) * (k + 1)), *u = NULL, *v = NULL;
    uint32_t *a = NULL;
    int status = -1;
    if (!x || !y) goto done;
    for (size_t j = 0; j < k; j++) x[j] = (int)(scale * xy[j * 2 + 0] + .5);
    x[k] = x[0];
    for (size_t j = 0; j < k; j++) y[j] = (int)(scale * xy[j * 2 + 1] + .5);
    y[k] = y[0];
    size_t m = 0;
    for (size_t j = 0; j < k; j++) {
        uint32_t dx = (uint32_t)abs(x[j] - x[j + 1]), dy = (uint32_t)abs(y[j] - y[j + 1]);
        if (!dx && !dy) { status = 1; goto done; }
        m += (dx > dy ? dx : dy) + 1;
    }
    u = malloc(sizeof(int) * m), v = malloc(sizeof(int) * m);
    if (!u || !v) goto done;
    m = 0;
    for (size_t j = 0; j < k; j++) {
        int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1], dx, dy, t, d, flip;
        double s;
        dx = abs(xe - xs), dy = abs(ys - ye);
        flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip) { t = xs; xs = xe; xe = t; t = ys; ys = ye; ye = t; }
        s = dx >= dy ? (double)(ye - ys) / dx : (double)(xe - xs) / dy;
        if (dx >= dy) for (d = 0; d <= dx; d++) {
            t = flip ? dx - d : d; u[m] = t + xs; v[m] = (int)(ys + s * t + .5); m++;
        } else for (d = 0; d <= dy; d++) {
            t = flip ? dy - d : d; v[m] = t + ys; u[m] = (int)(xs + s * t + .5); m++;
        }
    }
    size_t n = 0;  /* points along the y-boundary, downsampled (into x, y again) */
    free(x), free(y);
    x = malloc(sizeof(int) * (m ? m : 1)), y = malloc(sizeof(int) * (m ? m : 1));
    if (!x || !y) goto done;
    for (size_t j = 1; j < m; j++) {
        if (u[j] == u[j - 1]) continue;
        int column = u[j] < u[j - 1] ? u[j] : u[j] - 1;
        /* rleFrPoly's xd = (column + .5) / 5 - .5 is a whole number >= 0 exactly when column % 5 == 2, and then
         * (column - 2) / 5 (true in doubles for every column below 2^50; checked for all below 4e7) */
        if (column < 0 || column % 5 != 2 || (size_t)(column - 2) / 5 > w - 1) continue;
        double xd = (double)((column - 2) / 5), yd;
        yd = (double)(v[j] < v[j - 1] ? v[j] : v[j - 1]);
        yd = (yd + .5) / scale - .5;
        if (yd < 0) yd = 0; else if (yd > (double)h) yd = (double)h;
        yd = ceil(yd);
        x[n] = (int)xd, y[n] = (int)yd, n++;
    }
    a = malloc(sizeof(uint32_t) * (n + 1));
    if (!a) goto done;
    for (size_t j = 0; j < n; j++) a[j] = (uint32_t)(x[j] * (int)h + y[j]);
    a[n++] = (uint32_t)(h * w);
    uint32_t *spare = malloc(sizeof(uint32_t) * n);
    if (!spare) goto done;
    sort_uints(a, spare, n);
    free(spare);
    uint32_t prev = 0;
    for (size_t j = 0; j < n; j++) { uint32_t t = a[j]; a[j] -= prev; prev = t; }
    if (grow(out, n)) goto done;
    size_t j = 0, c = 0;
    out->v[c++] = a[j++];
    while (j < n) {
        if (a[j] > 0) out->v[c++] = a[j++];
        else { j++; if (j < n) out->v[c - 1] += a[j++]; }
    }
    out->n = c, status = 0;
done:
    free(x), free(y), free(u), free(v), free(a);
    return status;
}

/* rleMerge of two masks (union), into out. */
static int merge_union(const Counts *A, const Counts *B, Counts *out) {
    if (grow(out, A->n + B->n + 1)) return -1;
    uint32_t ca = A->n ? A->v[0] : 0, cb = B->n ? B->v[0] : 0, c, cc = 0, ct = 1;
    size_t a = 1, b = 1, m = 0;
    int v = 0, va = 0, vb = 0, vp;
    while (ct > 0) {
        c = ca < cb ? ca : cb, cc += c, ct = 0;
        ca -= c; if (!ca && a < A->n) { ca = A->v[a++]; va = !va; } ct += ca;
        cb -= c; if (!cb && b < B->n) { cb = B->v[b++]; vb = !vb; } ct += cb;
        vp = v, v = va || vb;
        if (v != vp || ct == 0) { out->v[m++] = cc; cc = 0; }
    }
    out->n = m;
    return 0;
}

static size_t encode(const Counts *r, char *s) {  /* rleToString: 6 bits a char, '0' + value; its length */
    size_t p = 0;
    for (size_t i = 0; i < r->n; i++) {
        long x = (long)r->v[i];
        if (i > 2) x -= (long)r->v[i - 2];
        int more = 1;
        while (more) {
            char c = (char)(x & 0x1f);
            x >>= 5;
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            c += 48;
            s[p++] = c;
        }
    }
    return p;
}

typedef struct {
    const double *xy;  /* every polygon's numbers */
    const Py_ssize_t *poly_end, *obj_end;  /* each polygon's end in xy (numbers), each object's end (polygons) */
    Py_ssize_t count, *next;  /* the objects; the next chunk of them not yet taken (shared, atomic) */
    size_t h, w;
    char **text;  /* each object's string (malloc'd) */
    size_t *length;
    int status;
} PolyPart;

enum { CHUNK = 32 };  /* objects taken at a time: sizes differ, so the threads take chunks as they go */

static void *poly_part(void *arg) {
    PolyPart *t = arg;
    Counts one = {0}, all = {0}, merged = {0};
    for (Py_ssize_t o = 0, stop = 0; t->status == 0; o++) {
        if (o >= stop) {
            o = __atomic_fetch_add(t->next, CHUNK, __ATOMIC_RELAXED);
            if (o >= t->count) break;
            stop = o + CHUNK < t->count ? o + CHUNK : t->count;
        }
        Py_ssize_t p0 = o ? t->obj_end[o - 1] : 0, p1 = t->obj_end[o];
        for (Py_ssize_t q = p0; q < p1 && t->status == 0; q++) {
            Py_ssize_t n0 = q ? t->poly_end[q - 1] : 0, n1 = t->poly_end[q];
            if ((t->status = from_polygon(t->xy + n0, (size_t)(n1 - n0) / 2, t->h, t->w, q == p0 ? &all : &one)))
                break;
            if (q > p0) {  /* pycocotools' merge of the parts, one after another */
                if ((t->status = merge_union(&all, &one, &merged))) break;
                Counts swap = all;
                all = merged, merged = swap;
            }
        }
        if (t->status == 1) {  /* this object is left to pycocotools: None in its place */
            t->status = 0;
            continue;
        }
        if (t->status) break;
        char *s = malloc(all.n * 7 + 1);  /* up to 7 characters a count (pycocotools allots 6: too few past 2^29) */
        if (!s) { t->status = -1; break; }
        t->length[o] = encode(&all, s), t->text[o] = s;
    }
    free(one.v), free(all.v), free(merged.v);
    return NULL;
}

/* polygons(objects, h, w, threads=1) -> list of {"size": [h, w], "counts": bytes} or None
 *     objects: a list of objects, each a non-empty list of polygons, each a list of an even number >= 6 of int or
 *     float coordinates x0, y0, x1, ...: what pycocotools' frPyObjects (and merge, for several parts) makes of
 *     them for an h x w image; None for anything else. An object with two equal consecutive points (where
 *     rleFrPoly's 0 / 0 makes the result depend on the compiler) is None in the list: left to pycocotools. */
static PyObject *polygons(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *objects;
    Py_ssize_t h, w, threads = 1;
    if (!PyArg_ParseTuple(args, "O!nn|n", &PyList_Type, &objects, &h, &w, &threads)) return NULL;
    if (h < 0 || w < 0 || (uint64_t)h * (uint64_t)w >= ((uint64_t)1 << 31)) Py_RETURN_NONE;
    Py_ssize_t n_obj = PyList_GET_SIZE(objects), n_poly = 0, n_num = 0;
    for (Py_ssize_t o = 0; o < n_obj; o++) {
        PyObject *obj = PyList_GET_ITEM(objects, o);
        if (!PyList_Check(obj) || PyList_GET_SIZE(obj) == 0) Py_RETURN_NONE;
        for (Py_ssize_t q = 0; q < PyList_GET_SIZE(obj); q++) {
            PyObject *poly = PyList_GET_ITEM(obj, q);
            if (!PyList_Check(poly) || PyList_GET_SIZE(poly) < 6 || PyList_GET_SIZE(poly) % 2) Py_RETURN_NONE;
            n_poly++, n_num += PyList_GET_SIZE(poly);
        }
    }
    double *xy = PyMem_Malloc(sizeof(double) * (size_t)(n_num ? n_num : 1));
    Py_ssize_t *poly_end = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_poly + 1));
    Py_ssize_t *obj_end = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n_obj + 1));
    char **text = PyMem_Calloc((size_t)(n_obj + 1), sizeof(char *));
    size_t *length = PyMem_Calloc((size_t)(n_obj + 1), sizeof(size_t));
    PyObject *result = NULL;
    int usual = 1;
    if (!xy || !poly_end || !obj_end || !text || !length) { PyErr_NoMemory(); goto done; }
    Py_ssize_t at = 0, q_at = 0;
    for (Py_ssize_t o = 0; o < n_obj && usual; o++) {
        PyObject *obj = PyList_GET_ITEM(objects, o);
        for (Py_ssize_t q = 0; q < PyList_GET_SIZE(obj) && usual; q++) {
            PyObject *poly = PyList_GET_ITEM(obj, q);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(poly); i++) {
                PyObject *value = PyList_GET_ITEM(poly, i);
                if (!(PyFloat_CheckExact(value) || (PyLong_CheckExact(value)))) { usual = 0; break; }
                xy[at++] = PyFloat_AsDouble(value);  /* np.array(p, dtype=double): float(int) for ints */
                if (PyErr_Occurred()) { PyErr_Clear(); usual = 0; break; }
            }
            poly_end[q_at++] = at;
        }
        obj_end[o] = q_at;
    }
    if (!usual) { Py_INCREF(Py_None); result = Py_None; goto done; }
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (n_obj < 2 * CHUNK) threads = 1;
    PolyPart parts[64];
    Py_ssize_t next = 0;
    for (Py_ssize_t i = 0; i < threads; i++)
        parts[i] = (PolyPart){xy, poly_end, obj_end, n_obj, &next, (size_t)h, (size_t)w, text, length, 0};
    Py_BEGIN_ALLOW_THREADS
    in_parallel(poly_part, parts, sizeof *parts, threads);
    Py_END_ALLOW_THREADS
    int status = 0;
    for (Py_ssize_t i = 0; i < threads; i++)
        if (parts[i].status && (status == 0 || parts[i].status < 0)) status = parts[i].status;
    if (status < 0) { PyErr_NoMemory(); goto done; }
    result = PyList_New(n_obj);
    int collecting = PyGC_Disable();  /* thousands of new dicts would start the cycle collector again and again */
    for (Py_ssize_t o = 0; result && o < n_obj; o++) {
        if (!text[o]) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(result, o, Py_None);
            continue;
        }
        PyObject *dims = Py_BuildValue("[nn]", h, w);  /* a list of its own, as pycocotools gives each */
        PyObject *counts = PyBytes_FromStringAndSize(text[o], (Py_ssize_t)length[o]);
        PyObject *dict = dims && counts ? Py_BuildValue("{sOsO}", "size", dims, "counts", counts) : NULL;
        Py_XDECREF(dims), Py_XDECREF(counts);
        if (!dict) { Py_CLEAR(result); break; }
        PyList_SET_ITEM(result, o, dict);
    }
    if (collecting) PyGC_Enable();
done:
    for (Py_ssize_t o = 0; text && o < n_obj; o++) free(text[o]);
    PyMem_Free(xy), PyMem_Free(poly_end), PyMem_Free(obj_end), PyMem_Free(text), PyMem_Free(length);
    return result;
}

static PyMethodDef methods[] = {
    {"polygons", polygons, METH_VARARGS, "Polygon objects to compressed RLE dicts, as pycocotools (see polygons)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_polygons", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__polygons(void) { return PyModule_Create(&module); }

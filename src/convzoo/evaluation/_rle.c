/* COCO's compressed RLE masks, compiled: the areas and the pairwise mask IoUs of masks.py, bit for bit those of
 * pycocotools' maskApi.c (rleFrString, rleArea, rleToBbox, bbIou, rleIou), without a Python call per image.
 *
 * areas(rles, threads=1) -> float64 bytes or None
 *     rles: a list of compressed RLE dicts ({"size": [h, w], "counts": str or bytes}), or packed RLEs: a tuple
 *     (counts, ends, heights, widths) of buffers (see packed_texts; masks.PackedRles.columns). The pixel count of
 *     each (rleArea).
 * ious(det_rles, gt_rles, gt_crowd, pair_det, pair_gt, out, threads=1) -> bool
 *     det_rles a list or packed (as for areas), gt_rles a list; gt_crowd bool[G], pair_det, pair_gt int64[P]
 *     (indices into the two; fastest with each detection's pairs together and the detections in list order: the
 *     strings are then read in the order they lie in memory), out float64[P] written: rleIou of each pair, crowd
 *     ground truths dividing by the detection's area; -1 where the two sizes differ and the boxes overlap
 *     (pycocotools). The pairs are cut into `threads` parts, one a thread.
 *     A mask whose counts do not add up to h x w is a ValueError (pycocotools' merge would never end).
 *
 * Both return None / False, and write nothing usable, when a record is not a dict of a "counts" string and a
 * "size" of two integers >= 0 (> 0 for ious), or a string is not one pycocotools decodes the ordinary way (a byte outside
 * '0'..'o', a number cut off at the end, one of more than six 5-bit groups, whose value pycocotools' int shifts
 * would make depend on the compiler): masks.py then asks pycocotools.
 * Decoding runs without the interpreter lock: the strings are only read while their list is held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "_parallel.h"
#include "_rlescan.h"

typedef struct { const char *s; Py_ssize_t n; int64_t h, w; } Text;

static PyObject *key_counts, *key_size;  /* interned once: their hashes are cached */

/* The "counts" strings (borrowed: valid while the list is alive) and "size" of a list of RLE dicts (only of the
 * records `which`, when given: n_which indices, repeats together). 0 on success, 1 when one is not a dict with a
 * str or bytes "counts" and a "size" of two integers, -1 with an exception. */
static int texts(PyObject *list, Text **out, Py_ssize_t *count, const int64_t *which, Py_ssize_t n_which) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    Text *t = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Text));
    if (!t) { PyErr_NoMemory(); return -1; }
    *out = t, *count = n;
    Py_ssize_t steps = which ? n_which : n;
    for (Py_ssize_t step = 0; step < steps; step++) {
        Py_ssize_t i = which ? which[step] : step;
        if (which && step && which[step] == which[step - 1]) continue;  /* read each record once */
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_ValueError, "_rle: a pair index is out of range");
            return -1;
        }
        PyObject *item = PyList_GET_ITEM(list, i), *counts, *size;
        if (!PyDict_Check(item) || !(counts = PyDict_GetItemWithError(item, key_counts)) ||
            !(size = PyDict_GetItemWithError(item, key_size)))
            return PyErr_Occurred() ? -1 : 1;
        if (PyUnicode_Check(counts)) {
            if (!(t[i].s = PyUnicode_AsUTF8AndSize(counts, &t[i].n))) return -1;
        } else if (PyBytes_Check(counts)) {
            t[i].s = PyBytes_AS_STRING(counts), t[i].n = PyBytes_GET_SIZE(counts);
        } else {
            return 1;
        }
        if (!(PyList_Check(size) || PyTuple_Check(size)) || PySequence_Fast_GET_SIZE(size) != 2) return 1;
        PyObject *h = PySequence_Fast_GET_ITEM(size, 0), *w = PySequence_Fast_GET_ITEM(size, 1);
        if (!PyLong_Check(h) || !PyLong_Check(w) || PyBool_Check(h) || PyBool_Check(w)) return 1;
        t[i].h = PyLong_AsLongLong(h), t[i].w = PyLong_AsLongLong(w);
        if (PyErr_Occurred()) { PyErr_Clear(); return 1; }
        if (t[i].h < 0 || t[i].w < 0) return 1;
    }
    return 0;
}

/* The same of packed RLEs: a tuple (counts, ends, heights, widths) of buffers, the strings back to back in counts,
 * ends int64[N] where each ends, heights and widths int64[N] (>= 0). The strings point into counts: views[4] holds
 * it (and the rest) until the caller releases them. 0, 1 when the columns do not agree, -1 with an exception. */
static int packed_texts(PyObject *tuple, Text **out, Py_ssize_t *count, Py_buffer views[4]) {
    for (int i = 0; i < 4; i++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tuple, i), &views[i], PyBUF_SIMPLE) < 0) return -1;
    Py_ssize_t n = views[1].len / 8;
    const int64_t *ends = views[1].buf, *h = views[2].buf, *w = views[3].buf;
    if (views[2].len != n * 8 || views[3].len != n * 8) return 1;
    Text *t = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Text));
    if (!t) { PyErr_NoMemory(); return -1; }
    *out = t, *count = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t start = i ? ends[i - 1] : 0;
        if (start > ends[i] || ends[i] > views[0].len || h[i] < 0 || w[i] < 0) return 1;
        t[i] = (Text){(const char *)views[0].buf + start, (Py_ssize_t)(ends[i] - start), h[i], w[i]};
    }
    return 0;
}

/* texts() of a list, packed_texts() of a 4-tuple. */
static int any_texts(PyObject *rles, Text **out, Py_ssize_t *count, const int64_t *which, Py_ssize_t n_which,
                     Py_buffer views[4]) {
    if (PyTuple_Check(rles) && PyTuple_GET_SIZE(rles) == 4) return packed_texts(rles, out, count, views);
    if (PyList_Check(rles)) return texts(rles, out, count, which, n_which);
    PyErr_SetString(PyExc_TypeError, "_rle: expected a list of RLE dicts or packed RLE columns");
    return -1;
}

static void release(Py_buffer views[4]) {
    for (int i = 0; i < 4; i++)
        if (views[i].obj) PyBuffer_Release(&views[i]);
}

typedef struct { uint32_t *cnts; Py_ssize_t m, cap; } Rle;

/* pycocotools' rleFrString (see _rlescan.h). 0 on success, 1 for an unusual string, -1 OOM. */
static int decode(const Text *t, Rle *r) {
    if (r->cap < t->n + 1) {
        uint32_t *c = realloc(r->cnts, (size_t)(t->n + 1) * sizeof(uint32_t));
        if (!c) return -1;
        r->cnts = c, r->cap = t->n + 1;
    }
    RleScan scan = {0, 0, 0, 0, 0};
    uint32_t count;
    for (Py_ssize_t p = 0; p < t->n; p++) {
        int got = rle_char(&scan, (unsigned char)t->s[p], &count);
        if (got < 0) return 1;
        if (got) r->cnts[scan.m - 1] = count;
    }
    if (scan.k) return 1;  /* a count cut off */
    r->m = (Py_ssize_t)scan.m;
    return 0;
}

static uint32_t area_of(const Rle *r) {  /* rleArea: the odd runs, in uint arithmetic */
    uint32_t a = 0;
    for (Py_ssize_t j = 1; j < r->m; j += 2) a += r->cnts[j];
    return a;
}

/* rleToBbox of pycocotools 2.0.11, exactly (its uint arithmetic included): each non-empty foreground run from its
 * first to its last pixel; a run across columns spans the whole height. Pixel cc is column cc / h, row cc % h;
 * below 2^32 pixels (where pycocotools' uint cc never wraps) they are followed run by run, most runs needing no
 * division (a run ends in its own column or the next). */
static void bbox_of(const Rle *r, uint32_t h, uint32_t w, double *bb) {
    Py_ssize_t m = (r->m / 2) * 2;
    uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0;
    if (m == 0) { bb[0] = bb[1] = bb[2] = bb[3] = 0; return; }
    int follow = (uint64_t)h * w < ((uint64_t)1 << 32);
    uint32_t x = 0, y = 0;  /* where pixel cc is (followed) */
    for (Py_ssize_t j = 0; j < m; j++) {
        uint32_t start = cc, count = r->cnts[j], x_start = x, y_start = y;
        cc += count;
        if (follow) {
            uint64_t row = (uint64_t)y + count;
            if (row < h) y = (uint32_t)row;
            else if (row < 2 * (uint64_t)h) y = (uint32_t)(row - h), x++;
            else x += (uint32_t)(row / h), y = (uint32_t)(row % h);
        }
        if (j % 2 == 0 || count == 0) continue;  /* background, or an empty foreground run */
        uint32_t x_end, y_end;
        if (follow) {
            x_end = y ? x : x - 1, y_end = y ? y - 1 : h - 1;  /* pixel cc - 1 */
        } else {
            y_start = start % h, x_start = (start - y_start) / h;
            y_end = (cc - 1) % h, x_end = (cc - 1 - y_end) / h;
        }
        xs = xs < x_start ? xs : x_start, xe = xe > x_end ? xe : x_end;
        if (x_start < x_end) {
            ys = 0, ye = h - 1;
        } else {
            ys = ys < y_start ? ys : y_start, ye = ye > y_end ? ye : y_end;
        }
    }
    bb[0] = xs, bb[2] = (uint32_t)(xe - xs + 1), bb[1] = ys, bb[3] = (uint32_t)(ye - ys + 1);
}

static int overlap(const double *db, const double *gb) {  /* bbIou(...) > 0 */
    double w = (db[2] + db[0] < gb[2] + gb[0] ? db[2] + db[0] : gb[2] + gb[0]) - (db[0] > gb[0] ? db[0] : gb[0]);
    if (w <= 0) return 0;
    double h = (db[3] + db[1] < gb[3] + gb[1] ? db[3] + db[1] : gb[3] + gb[1]) - (db[1] > gb[1] ? db[1] : gb[1]);
    return h > 0;
}

static double rle_iou(const Rle *dt, const Rle *gt, int crowd) {  /* rleIou's merge of the two run lists */
    if (dt->m == 0 || gt->m == 0) return 0.0;  /* empty masks: the box test already failed there */
    uint32_t ca = dt->cnts[0], cb = gt->cnts[0], c, ct = 1, i = 0, u = 0;
    Py_ssize_t ka = dt->m, kb = gt->m, a = 1, b = 1;
    int va = 0, vb = 0;
    while (ct > 0) {
        c = ca < cb ? ca : cb;
        if (va || vb) { u += c; if (va && vb) i += c; }
        ct = 0;
        ca -= c; if (!ca && a < ka) { ca = dt->cnts[a++]; va = !va; } ct += ca;
        cb -= c; if (!cb && b < kb) { cb = gt->cnts[b++]; vb = !vb; } ct += cb;
    }
    if (i == 0) u = 1;
    else if (crowd) u = area_of(dt);
    return (double)i / (double)u;
}

typedef struct { const Text *t; Py_ssize_t i0, i1; double *a; int status; } AreaPart;

static void *area_part(void *arg) {
    AreaPart *part = arg;
    Rle r = {NULL, 0, 0};
    for (Py_ssize_t i = part->i0; i < part->i1 && part->status == 0; i++)
        if ((part->status = decode(&part->t[i], &r)) == 0) part->a[i] = (double)area_of(&r);
    free(r.cnts);
    return NULL;
}

static PyObject *areas(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *list;
    Py_ssize_t threads = 1, n;
    if (!PyArg_ParseTuple(args, "O|n", &list, &threads)) return NULL;
    Text *t = NULL;
    Py_buffer views[4];
    memset(views, 0, sizeof views);
    int got = any_texts(list, &t, &n, NULL, 0, views);
    if (got) {
        PyMem_Free(t), release(views);
        if (got < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(double));
    if (!out) { PyMem_Free(t), release(views); return NULL; }
    double *a = (double *)PyBytes_AS_STRING(out);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    AreaPart parts[64];
    for (Py_ssize_t i = 0; i < threads; i++)
        parts[i] = (AreaPart){t, n * i / threads, n * (i + 1) / threads, a, 0};
    Py_BEGIN_ALLOW_THREADS
    in_parallel(area_part, parts, sizeof *parts, threads);
    Py_END_ALLOW_THREADS
    PyMem_Free(t), release(views);
    int status = 0;
    for (Py_ssize_t i = 0; i < threads; i++)
        if (parts[i].status && (status == 0 || parts[i].status < 0)) status = parts[i].status;
    if (status < 0) { Py_DECREF(out); return PyErr_NoMemory(); }
    if (status > 0) { Py_DECREF(out); Py_RETURN_NONE; }
    return out;
}

typedef struct { Rle rle; double box[4]; uint32_t h, w; } Mask;

static int load(const Text *t, Mask *mask) {
    if (t->h <= 0 || t->w <= 0 || t->h > UINT32_MAX || t->w > UINT32_MAX) return 1;
    int status = decode(t, &mask->rle);
    if (status) return status;
    uint64_t total = 0;  /* rleIou's merge never ends on two masks of different totals (pycocotools hangs there) */
    for (Py_ssize_t j = 0; j < mask->rle.m; j++) total += mask->rle.cnts[j];
    if (total != (uint64_t)t->h * (uint64_t)t->w) return 3;
    mask->h = (uint32_t)t->h, mask->w = (uint32_t)t->w;
    bbox_of(&mask->rle, mask->h, mask->w, mask->box);
    return 0;
}

enum { SLOTS = 1024 };  /* a direct-mapped cache of decoded ground truths (those of the images at hand) */

static int run_ious(const Text *dt, Py_ssize_t nd, const Text *gt, Py_ssize_t ng, const uint8_t *crowd,
                    const int64_t *pd, const int64_t *pg, Py_ssize_t p0, Py_ssize_t p1, double *out,
                    Py_ssize_t *bad) {
    Mask det = {{NULL, 0, 0}, {0}, 0, 0};
    Mask *cache = calloc(SLOTS, sizeof(Mask));
    Py_ssize_t *held = malloc(SLOTS * sizeof(Py_ssize_t)), current = -1;
    if (!cache || !held) { free(cache), free(held); return -1; }
    for (Py_ssize_t i = 0; i < SLOTS; i++) held[i] = -1;
    int status = 0;
    for (Py_ssize_t p = p0; p < p1 && status == 0; p++) {
        Py_ssize_t d = pd[p], g = pg[p];
        if (d < 0 || d >= nd || g < 0 || g >= ng) { status = 2; break; }
        if (d != current && (status = load(&dt[d], &det))) { *bad = d; break; }
        current = d;
        Mask *m = &cache[g % SLOTS];
        if (held[g % SLOTS] != g) {
            held[g % SLOTS] = -1;
            if ((status = load(&gt[g], m))) {
                *bad = g, status += status == 3;  /* 4: a ground truth's counts do not fill its mask */
                break;
            }
            held[g % SLOTS] = g;
        }
        if (!overlap(det.box, m->box)) out[p] = 0.0;
        else if (det.h != m->h || det.w != m->w) out[p] = -1.0;
        else out[p] = rle_iou(&det.rle, &m->rle, crowd[g] != 0);
    }
    free(det.rle.cnts);
    for (Py_ssize_t i = 0; i < SLOTS; i++) free(cache[i].rle.cnts);
    free(cache), free(held);
    return status;
}

typedef struct {
    const Text *dt, *gt;
    Py_ssize_t nd, ng, p0, p1;
    const uint8_t *crowd;
    const int64_t *pd, *pg;
    double *out;
    int status;
    Py_ssize_t bad;  /* with status 3 (a detection) or 4 (a ground truth): whose counts do not fill the mask */
} Part;

static void *run_part(void *arg) {
    Part *t = arg;
    t->status = run_ious(t->dt, t->nd, t->gt, t->ng, t->crowd, t->pd, t->pg, t->p0, t->p1, t->out, &t->bad);
    return NULL;
}

/* The pairs cut into `threads` contiguous parts at detection boundaries, each on its own thread. */
static int run_threads(Part *whole, Py_ssize_t np, Py_ssize_t threads) {
    if (threads > 64) threads = 64;
    Part parts[64];
    Py_ssize_t start = 0, n = 0;
    for (Py_ssize_t i = 0; i < threads && start < np; i++) {
        Py_ssize_t end = i == threads - 1 ? np : start + (np - start) / (threads - i);
        while (end < np && end > start && whole->pd[end] == whole->pd[end - 1]) end++;
        parts[n] = *whole, parts[n].p0 = start, parts[n].p1 = end, parts[n].status = 0;
        start = end, n++;
    }
    in_parallel(run_part, parts, sizeof *parts, n);
    int status = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parts[i].status < 0 || parts[i].status >= 2) {  /* errors before a fallback */
            whole->bad = parts[i].bad;
            return parts[i].status;
        }
        if (parts[i].status) status = parts[i].status;
    }
    return status;
}

static PyObject *ious(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *dlist, *glist;
    Py_buffer b[4];
    memset(b, 0, sizeof b);
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "OO!y*y*y*w*|n", &dlist, &PyList_Type, &glist, &b[0], &b[1], &b[2], &b[3],
                          &threads))
        return NULL;
    Text *dt = NULL, *gt = NULL;
    Py_ssize_t nd = 0, ng = 0, np = b[1].len / 8;
    PyObject *result = NULL;
    int paired = b[2].len == np * 8;  /* pair_gt fits: read only the paired records */
    Py_buffer views[4];
    memset(views, 0, sizeof views);
    int got = any_texts(dlist, &dt, &nd, b[1].buf, np, views);
    if (got == 0) got = texts(glist, &gt, &ng, paired ? b[2].buf : NULL, paired ? np : 0);
    if (got > 0) {
        Py_INCREF(Py_False), result = Py_False;
    } else if (got == 0) {
        if (b[0].len != ng || b[2].len != np * 8 || b[3].len != np * 8) {
            PyErr_SetString(PyExc_ValueError, "_rle: sizes do not agree");
        } else {
            int status;
            Part whole = {dt, gt, nd, ng, 0, np, b[0].buf, b[1].buf, b[2].buf, b[3].buf, 0, -1};
            Py_BEGIN_ALLOW_THREADS
            status = run_threads(&whole, np, threads < 1 ? 1 : threads);
            Py_END_ALLOW_THREADS
            if (status < 0) PyErr_NoMemory();
            else if (status == 2) PyErr_SetString(PyExc_ValueError, "_rle: a pair index is out of range");
            else if (status >= 3)
                PyErr_Format(PyExc_ValueError, "_rle: the RLE counts of %s %zd do not add up to its height x width",
                             status == 3 ? "detection" : "ground truth", whole.bad);
            else result = PyBool_FromLong(status == 0);
        }
    }
    PyMem_Free(dt), PyMem_Free(gt), release(views);
    for (int i = 0; i < 4; i++) PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"areas", areas, METH_VARARGS, "The pixel count of each compressed RLE string (see the file's head)."},
    {"ious", ious, METH_VARARGS, "Mask IoU of (detection, ground truth) pairs (see the file's head)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rle", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rle(void) {
    if (!key_counts && !(key_counts = PyUnicode_InternFromString("counts"))) return NULL;
    if (!key_size && !(key_size = PyUnicode_InternFromString("size"))) return NULL;
    return PyModule_Create(&module);
}

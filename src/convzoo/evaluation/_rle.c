/* COCO's compressed RLE masks, compiled: the areas and the pairwise mask IoUs of masks.py, bit for bit those of
 * pycocotools' maskApi.c (rleFrString, rleArea, rleToBbox, bbIou, rleIou), without a Python call per image.
 *
 * areas(rles, threads=1) -> float64 bytes or None
 *     rles: a list of compressed RLE dicts ({"size": [h, w], "counts": str or bytes}). The pixel count of each
 *     (rleArea).
 * ious(det_rles, gt_rles, gt_crowd, pair_det, pair_gt, out, threads=1) -> bool
 *     gt_crowd bool[G], pair_det, pair_gt int64[P] (indices into the two lists; fastest with each detection's pairs
 *     together and the detections in list order: the strings are then read in the order they lie in memory), out
 *     float64[P] written: rleIou of each pair, crowd ground truths dividing by the detection's area; -1 where the
 *     two sizes differ and the boxes overlap (pycocotools). The pairs are cut into `threads` parts, one a thread.
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
#ifndef _WIN32
#include <pthread.h>
#endif

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

typedef struct { uint32_t *cnts; Py_ssize_t m, cap; } Rle;

/* pycocotools' rleFrString: 5-bit groups, '0' + value, 0x20 = more, 0x10 = negative in the last group; from the
 * fourth count on, each is a difference to the count two before. 0 on success, 1 for an unusual string, -1 OOM. */
static int decode(const Text *t, Rle *r) {
    if (r->cap < t->n + 1) {
        uint32_t *c = realloc(r->cnts, (size_t)(t->n + 1) * sizeof(uint32_t));
        if (!c) return -1;
        r->cnts = c, r->cap = t->n + 1;
    }
    Py_ssize_t m = 0, p = 0;
    while (p < t->n) {
        int64_t x = 0;
        int k = 0, more = 1;
        while (more) {
            if (p >= t->n || k >= 6) return 1;
            int c = (unsigned char)t->s[p] - 48;
            if (c < 0 || c > 63) return 1;
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20, p++, k++;
            if (!more && (c & 0x10)) x |= -((int64_t)1 << (5 * k));
        }
        if (m > 2) x += (int64_t)r->cnts[m - 2];
        r->cnts[m++] = (uint32_t)x;
    }
    r->m = m;
    return 0;
}

static uint32_t area_of(const Rle *r) {  /* rleArea: the odd runs, in uint arithmetic */
    uint32_t a = 0;
    for (Py_ssize_t j = 1; j < r->m; j += 2) a += r->cnts[j];
    return a;
}

static void bbox_of(const Rle *r, uint32_t h, uint32_t w, double *bb) {  /* rleToBbox, exactly */
    Py_ssize_t m = (r->m / 2) * 2;
    uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
    if (m == 0) { bb[0] = bb[1] = bb[2] = bb[3] = 0; return; }
    uint32_t last = 0, x = 0, y = 0;  /* t = x * h + y, kept as the previous t moves on (a division only for jumps) */
    for (Py_ssize_t j = 0; j < m; j++) {
        cc += r->cnts[j];
        uint32_t t = cc - (uint32_t)(j % 2);
        if (j > 0 && t >= last && t - last < h) {
            y += t - last;
            if (y >= h) y -= h, x++;
        } else {
            y = t % h, x = (t - y) / h;
        }
        last = t;
        if (j % 2 == 0) xp = x;
        else if (xp < x) ys = 0, ye = h - 1;
        xs = xs < x ? xs : x, xe = xe > x ? xe : x, ys = ys < y ? ys : y, ye = ye > y ? ye : y;
    }
    bb[0] = xs, bb[2] = xe - xs + 1, bb[1] = ys, bb[3] = ye - ys + 1;
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

/* work(parts + i * size) for i < n, on n threads (this one the first; a thread that cannot start runs here). */
static void in_parallel(void *(*work)(void *), void *parts, size_t size, Py_ssize_t n) {
    char *at = parts;
#ifndef _WIN32
    pthread_t ids[64];
    int started[64] = {0};
    for (Py_ssize_t i = 1; i < n && i < 64; i++) started[i] = pthread_create(&ids[i], NULL, work, at + i * size) == 0;
    if (n > 0) work(at);
    for (Py_ssize_t i = 1; i < n && i < 64; i++) {
        if (started[i]) pthread_join(ids[i], NULL);
        else work(at + i * size);
    }
#else
    for (Py_ssize_t i = 0; i < n; i++) work(at + i * size);
#endif
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
    if (!PyList_Check(list)) return PyErr_Format(PyExc_TypeError, "_rle: expected a list of RLE dicts");
    Text *t = NULL;
    int got = texts(list, &t, &n, NULL, 0);
    if (got) {
        PyMem_Free(t);
        if (got < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(double));
    if (!out) { PyMem_Free(t); return NULL; }
    double *a = (double *)PyBytes_AS_STRING(out);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    AreaPart parts[64];
    for (Py_ssize_t i = 0; i < threads; i++)
        parts[i] = (AreaPart){t, n * i / threads, n * (i + 1) / threads, a, 0};
    Py_BEGIN_ALLOW_THREADS
    in_parallel(area_part, parts, sizeof *parts, threads);
    Py_END_ALLOW_THREADS
    PyMem_Free(t);
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
    mask->h = (uint32_t)t->h, mask->w = (uint32_t)t->w;
    bbox_of(&mask->rle, mask->h, mask->w, mask->box);
    return 0;
}

enum { SLOTS = 1024 };  /* a direct-mapped cache of decoded ground truths (those of the images at hand) */

static int run_ious(const Text *dt, Py_ssize_t nd, const Text *gt, Py_ssize_t ng, const uint8_t *crowd,
                    const int64_t *pd, const int64_t *pg, Py_ssize_t p0, Py_ssize_t p1, double *out) {
    Mask det = {{NULL, 0, 0}, {0}, 0, 0};
    Mask *cache = calloc(SLOTS, sizeof(Mask));
    Py_ssize_t *held = malloc(SLOTS * sizeof(Py_ssize_t)), current = -1;
    if (!cache || !held) { free(cache), free(held); return -1; }
    for (Py_ssize_t i = 0; i < SLOTS; i++) held[i] = -1;
    int status = 0;
    for (Py_ssize_t p = p0; p < p1 && status == 0; p++) {
        Py_ssize_t d = pd[p], g = pg[p];
        if (d < 0 || d >= nd || g < 0 || g >= ng) { status = 2; break; }
        if (d != current && (status = load(&dt[d], &det))) break;
        current = d;
        Mask *m = &cache[g % SLOTS];
        if (held[g % SLOTS] != g) {
            held[g % SLOTS] = -1;
            if ((status = load(&gt[g], m))) break;
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
} Part;

static void *run_part(void *arg) {
    Part *t = arg;
    t->status = run_ious(t->dt, t->nd, t->gt, t->ng, t->crowd, t->pd, t->pg, t->p0, t->p1, t->out);
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
        if (parts[i].status < 0 || parts[i].status == 2) return parts[i].status;
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
    if (!PyArg_ParseTuple(args, "O!O!y*y*y*w*|n", &PyList_Type, &dlist, &PyList_Type, &glist, &b[0], &b[1], &b[2],
                          &b[3], &threads))
        return NULL;
    Text *dt = NULL, *gt = NULL;
    Py_ssize_t nd = 0, ng = 0, np = b[1].len / 8;
    PyObject *result = NULL;
    int paired = b[2].len == np * 8;  /* pair_gt fits: read only the paired records */
    int got = texts(dlist, &dt, &nd, b[1].buf, np);
    if (got == 0) got = texts(glist, &gt, &ng, paired ? b[2].buf : NULL, paired ? np : 0);
    if (got > 0) {
        Py_INCREF(Py_False), result = Py_False;
    } else if (got == 0) {
        if (b[0].len != ng || b[2].len != np * 8 || b[3].len != np * 8) {
            PyErr_SetString(PyExc_ValueError, "_rle: sizes do not agree");
        } else {
            int status;
            Part whole = {dt, gt, nd, ng, 0, np, b[0].buf, b[1].buf, b[2].buf, b[3].buf, 0};
            Py_BEGIN_ALLOW_THREADS
            status = run_threads(&whole, np, threads < 1 ? 1 : threads);
            Py_END_ALLOW_THREADS
            if (status < 0) PyErr_NoMemory();
            else if (status == 2) PyErr_SetString(PyExc_ValueError, "_rle: a pair index is out of range");
            else result = PyBool_FromLong(status == 0);
        }
    }
    PyMem_Free(dt), PyMem_Free(gt);
    for (int i = 0; i < 4; i++) PyBuffer_Release(&b[i]);
    return result;
}

/* ---- Polygons to compressed RLEs: pycocotools' rleFrPoly, rleMerge (union) and rleToString, exactly. ---- */

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

static int compare_uint(const void *a, const void *b) {  /* pycocotools' uintCompare */
    uint32_t c = *(const uint32_t *)a, d = *(const uint32_t *)b;
    return c > d ? 1 : c < d ? -1 : 0;
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
        double xd = (double)(u[j] < u[j - 1] ? u[j] : u[j] - 1), yd;
        xd = (xd + .5) / scale - .5;
        if (floor(xd) != xd || xd < 0 || xd > (double)(w - 1)) continue;
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
    qsort(a, n, sizeof(uint32_t), compare_uint);
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
        char *s = malloc(all.n * 6 + 1);
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
    {"areas", areas, METH_VARARGS, "The pixel count of each compressed RLE string (see the file's head)."},
    {"ious", ious, METH_VARARGS, "Mask IoU of (detection, ground truth) pairs (see the file's head)."},
    {"polygons", polygons, METH_VARARGS, "Polygon objects to compressed RLE dicts, as pycocotools (see polygons)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rle", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rle(void) {
    if (!key_counts && !(key_counts = PyUnicode_InternFromString("counts"))) return NULL;
    if (!key_size && !(key_size = PyUnicode_InternFromString("size"))) return NULL;
    return PyModule_Create(&module);
}

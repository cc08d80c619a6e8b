/* pycocotools' per-image matching (evaluateImg) and accumulation (accumulate), compiled: the optional core of
 * cocoeval.py, which falls back to the numpy forms of matching.py and accumulate.py where this is not built.
 *
 * evaluate(d_index, d_group, d_rank, score, area, box, g_group, g_crowd, g_ignore, g_idnz, g_box, sim,
 *          iou_thrs, rec_thrs, max_dets, area_lo, area_hi, npig, slot, num_images, num_cats, num_columns, use_sim,
 *          quirks, threads, precision, recall, scores, matched_gt) -> None
 *
 * Every argument but the six integers is a C-contiguous buffer (numpy arrays), the last four written:
 *   d_index  int64[D]  the detections evaluated, rows of score, area and box, in the order below
 *   d_group  int64[D]  group = category * num_images + image, ascending; within a group the detections are in
 *                      decreasing score order (ties in file order) and cut at the largest max_dets
 *   d_rank   int64[D]  position within its group
 *   score, area float64[N] and box float64[N, 4] (x, y, w, h; empty with use_sim): every detection's
 *   g_group  int64[G] ascending (within a group in pycocotools' order), g_crowd bool[G], g_ignore bool[A, G]
 *            (crowd, no keypoints, or area out of range), g_idnz bool[G] (the annotation id is not 0)
 *   g_box    float64[G, 4], or empty when sim is given
 *   sim      float64[P] (use_sim): for every detection in order, its similarity to each ground truth of its group
 *            in order (matching.group_pairs); without use_sim box IoUs are computed here from box and g_box
 *   iou_thrs float64[T], rec_thrs float64[R] (any order), max_dets int64[M] ascending, area_lo, area_hi
 *            float64[A] (a detection is outside a range when area < lo or area > hi), npig int64[K, A] (the
 *            non-ignored ground truths of each category and area range), slot int64[K] (the category's column
 *            K' in the tables, -1: not evaluated)
 *   precision, scores float64[T, R, K', A, M] and recall float64[T, K', A, M], filled with -1 by the caller: only
 *            the cells of a (category, area) with ground truth are written
 *   matched_gt int64[T, A, D] (the matched ground truth's index in g order, -1: none), or empty
 *
 * Arithmetic is pycocotools' (and numpy's) to the bit: IoU as maskApi.c's bbIou, rc = tp / npig, pr = tp / (fp +
 * tp + eps) with tp, fp float64 counts, the envelope by pycocotools' backward loop, the read-out at numpy's
 * searchsorted(side="left"). setup.py compiles it with -ffp-contract=off: no fused multiply-adds. The work runs
 * without the interpreter lock, its categories on up to `threads` threads (each writes its own cells).
 */
#include "_cocoeval.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <pthread.h>
#endif

typedef struct {
    Py_ssize_t D, G, P, T, R, M, A, K, I, K_out, threads;
    const int64_t *d_index, *d_group, *d_rank, *g_group, *max_dets, *npig, *slot;
    const double *score, *area, *box, *g_box, *sim, *thr, *rec, *area_lo, *area_hi;
    const uint8_t *g_crowd, *g_ignore, *g_idnz;
    int quirks, use_sim;
    double *precision, *recall, *scores;
    int64_t *matched_gt;
} Job;

typedef struct { void *data; size_t size; } Scratch;  /* a reusable buffer that only grows */

static void *room(Scratch *s, size_t size) {
    if (size > s->size || !s->data) {
        void *data = realloc(s->data, size ? size : 1);
        if (!data) return NULL;
        s->data = data, s->size = size;
    }
    return s->data;
}

/* pycocotools' bbIou of one detection against n ground truths (maskApi.c; numpy's box_iou_pairs). */
static void box_ious(const double *db, const double *gb, const uint8_t *crowd, Py_ssize_t n, double *out) {
    double dx = db[0], dy = db[1], dw = db[2], dh = db[3], da = dw * dh;
    for (Py_ssize_t q = 0; q < n; q++) {
        const double *g = gb + 4 * q;
        double x2 = dw + dx < g[2] + g[0] ? dw + dx : g[2] + g[0], x1 = dx > g[0] ? dx : g[0];
        double y2 = dh + dy < g[3] + g[1] ? dh + dy : g[3] + g[1], y1 = dy > g[1] ? dy : g[1];
        double w = x2 - x1, h = y2 - y1;
        if (!(w > 0) || !(h > 0)) { out[q] = 0.0; continue; }
        double inter = w * h, union_ = crowd[q] ? da : da + g[2] * g[3] - inter;
        out[q] = inter / union_;
    }
}

/* Sort by decreasing score, ties in index order (numpy's stable argsort of -score): a bottom-up merge sort. */
void cz_sort_by_score(Ranked *items, Ranked *tmp, Py_ssize_t n) {
    for (Py_ssize_t width = 1; width < n; width *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * width) {
            Py_ssize_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            Py_ssize_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = items[a].score >= items[b].score ? items[a++] : items[b++];
            while (a < mid) tmp[o++] = items[a++];
            while (b < hi) tmp[o++] = items[b++];
        }
        memcpy(items, tmp, (size_t)n * sizeof *items);
    }
}

/* What the matching leaves for the accumulation of one category (n detections, TA = T * A):
 *   cand[j]          1 when the detection was compared with some ground truth at or above the lowest threshold
 *   flags[j * TA + t * A + a]  (candidates only) 1 true positive, 2 false positive, 0 ignored
 *   outside[j * A + a]         its area is out of the range (an unmatched detection there is ignored)
 *   score[j], area[j], box[4 * j]  the category's detections' values, gathered (one pass of independent loads
 *                                  instead of cache misses inside the matching) */
typedef struct { Scratch cand, flags, outside, taken, row, ranked, tmp, events, counts, score, area, box; } Work;

/* Match the detections [ds, de) of one category (groups in order) at every threshold and area range. *p is the
 * offset of the first detection's row of sim. Returns -1 when out of memory, -2 when sim is too short. */
static int match_category(const Job *job, Work *w, Py_ssize_t ds, Py_ssize_t de, Py_ssize_t gs, Py_ssize_t ge,
                          Py_ssize_t *p) {
    Py_ssize_t n = de - ds, T = job->T, A = job->A, TA = T * A, gp = gs;
    uint8_t *cand = room(&w->cand, (size_t)n), *flags = room(&w->flags, (size_t)(n * TA));
    uint8_t *outside = room(&w->outside, (size_t)(n * A));
    double *score = room(&w->score, (size_t)n * sizeof(double)), *areas = room(&w->area, (size_t)n * sizeof(double));
    double *boxes = job->use_sim ? NULL : room(&w->box, (size_t)(4 * n) * sizeof(double));
    if (!cand || !flags || !outside || !score || !areas || (!job->use_sim && !boxes)) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t row = job->d_index[ds + i];
        score[i] = job->score[row], areas[i] = job->area[row];
        if (boxes) memcpy(boxes + 4 * i, job->box + 4 * row, 4 * sizeof(double));
    }
    double lowest = 1 - 1e-10;  /* no similarity below the lowest (capped) threshold can match */
    for (Py_ssize_t t = 0; t < T; t++)
        if (job->thr[t] < lowest) lowest = job->thr[t];
    Py_ssize_t j = ds;
    while (j < de) {
        int64_t key = job->d_group[j];
        Py_ssize_t je = j;
        while (je < de && job->d_group[je] == key) je++;
        while (gp < ge && job->g_group[gp] < key) gp++;
        Py_ssize_t gq = gp;
        while (gq < ge && job->g_group[gq] == key) gq++;
        Py_ssize_t ng = gq - gp;
        uint8_t *taken = room(&w->taken, (size_t)(TA * ng));
        double *row = room(&w->row, (size_t)ng * sizeof(double));
        if (!taken || !row) return -1;
        memset(taken, 0, (size_t)(TA * ng));
        const uint8_t *crowd = job->g_crowd + gp, *idnz = job->g_idnz + gp;
        for (; j < je; j++) {
            Py_ssize_t lj = j - ds;
            const double *sim = row;
            if (job->use_sim) {
                if (*p + ng > job->P) return -2;
                sim = job->sim + *p;
                *p += ng;
            } else if (ng) {
                box_ious(boxes + 4 * lj, job->g_box + 4 * gp, crowd, ng, row);
            }
            double area = areas[lj];
            for (Py_ssize_t a = 0; a < A; a++)
                outside[lj * A + a] = area < job->area_lo[a] || area > job->area_hi[a];
            int close = 0;
            for (Py_ssize_t q = 0; q < ng && !close; q++) close = sim[q] >= lowest;
            cand[lj] = (uint8_t)close;
            if (!close) {  /* matches nothing at any threshold: a false positive inside a range, ignored outside */
                if (job->matched_gt)
                    for (Py_ssize_t ta = 0; ta < TA; ta++) job->matched_gt[ta * job->D + j] = -1;
                continue;
            }
            for (Py_ssize_t t = 0; t < T; t++) {
                double cap = job->thr[t] < 1 - 1e-10 ? job->thr[t] : 1 - 1e-10;  /* np.minimum(t, 1 - 1e-10) */
                for (Py_ssize_t a = 0; a < A; a++) {
                    const uint8_t *ignore = job->g_ignore + a * job->G + gp;
                    uint8_t *took = taken + (t * A + a) * ng;
                    double best_sim = cap;
                    Py_ssize_t best = -1;
                    /* pycocotools scans regular ground truths, then ignored ones (a stable sort by the flag), and
                     * stops at the first ignored one once a regular one matched; ties go to the later one. */
                    for (int pass = 0; pass < 2 && best < 0; pass++) {
                        for (Py_ssize_t q = 0; q < ng; q++) {
                            if (ignore[q] != pass || (took[q] && !crowd[q]) || sim[q] < best_sim) continue;
                            best_sim = sim[q], best = q;
                        }
                    }
                    int matched = 0, ignored = 0;
                    if (best >= 0) {
                        took[best] = 1;
                        ignored = ignore[best] != 0;
                        matched = idnz[best] != 0;  /* pycocotools tests the stored gt id for truth */
                    }
                    if (job->matched_gt) job->matched_gt[(t * A + a) * job->D + j] = best >= 0 ? gp + best : -1;
                    if (!matched && outside[lj * A + a]) ignored = 1;
                    flags[lj * TA + t * A + a] = ignored ? 0 : matched ? 1 : 2;
                }
            }
        }
        gp = gq;
    }
    return 0;
}

typedef struct { double rc, pr, score; } Event;  /* a true positive: recall, precision and score there */

/* pycocotools' accumulate for category k, its detections [ds, de) matched by match_category.
 *
 * Along the detections in score order, rc = tp / npig only grows at true positives and pr = tp / (fp + tp + eps)
 * only falls between them (correctly rounded division is monotone), so the envelope max(pr[i:]) at the first
 * detection reaching a recall threshold > 0 is the maximum over the true positives from there on: only those are
 * kept ("events"). A threshold <= 0 is reached at the first detection, whatever it is. */
static int accumulate_category(const Job *job, Work *w, Py_ssize_t k, Py_ssize_t ds, Py_ssize_t de) {
    Py_ssize_t n = de - ds, T = job->T, A = job->A, R = job->R, M = job->M, K = job->K_out, TA = T * A;
    Py_ssize_t col = job->slot[k];  /* the category's column in the tables */
    if (col < 0) return 0;
    const uint8_t *cand = w->cand.data, *flags = w->flags.data, *outside = w->outside.data;
    const double *score = w->score.data;
    Ranked *ranked = room(&w->ranked, (size_t)n * sizeof(Ranked)), *tmp = room(&w->tmp, (size_t)n * sizeof(Ranked));
    Py_ssize_t capacity = 0;  /* events of one (t, a): at most its non-ignored ground truths */
    for (Py_ssize_t a = 0; a < A; a++)
        if (job->npig[k * A + a] > capacity) capacity = job->npig[k * A + a];
    Event *events = room(&w->events, (size_t)(TA * capacity) * sizeof(Event));
    int64_t *counts = room(&w->counts, (size_t)(3 * TA + A) * sizeof(int64_t));
    if (!ranked || !tmp || !events || !counts) return -1;
    int64_t *tp = counts, *fp = counts + TA, *nev = counts + 2 * TA, *fp_unmatched = counts + 3 * TA;
    for (Py_ssize_t i = 0; i < n; i++) ranked[i].score = score[i], ranked[i].index = (int32_t)i;
    cz_sort_by_score(ranked, tmp, n);
    for (Py_ssize_t m = 0; m < M; m++) {
        memset(counts, 0, (size_t)(3 * TA + A) * sizeof(int64_t));
        Py_ssize_t nd = 0;
        double first_score = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {  /* the first max_dets[m] of each image, in score order */
            Py_ssize_t j = ranked[i].index;
            if (job->d_rank[ds + j] >= job->max_dets[m]) continue;
            if (nd++ == 0) first_score = ranked[i].score;
            if (!cand[j]) {
                for (Py_ssize_t a = 0; a < A; a++) fp_unmatched[a] += !outside[j * A + a];
                continue;
            }
            for (Py_ssize_t ta = 0; ta < TA; ta++) {
                uint8_t v = flags[j * TA + ta];
                if (v == 2) fp[ta]++;
                if (v != 1) continue;
                Py_ssize_t a = ta % A;
                int64_t npig = job->npig[k * A + a];
                if (nev[ta] >= npig) return -2;  /* more true positives than ground truths: inconsistent input */
                double tps = (double)++tp[ta], fps = (double)(fp[ta] + fp_unmatched[a]);
                Event *e = events + ta * capacity + nev[ta]++;
                e->rc = tps / (double)npig, e->pr = tps / (fps + tps + DBL_EPSILON), e->score = ranked[i].score;
            }
        }
        for (Py_ssize_t ta = 0; ta < TA; ta++) {
            Py_ssize_t t = ta / A, a = ta % A;
            int64_t npig = job->npig[k * A + a];
            if (npig == 0) continue;  /* pycocotools: no ground truth, the cells stay -1 */
            Event *e = events + ta * capacity;
            Py_ssize_t ne = nev[ta];
            job->recall[((t * K + col) * A + a) * M + m] = (double)tp[ta] / (double)npig;
            for (Py_ssize_t i = ne - 1; i > 0; i--)  /* pycocotools' backward loop: the envelope */
                if (e[i].pr > e[i - 1].pr) e[i - 1].pr = e[i].pr;
            int stopped = 0;
            for (Py_ssize_t r = 0; r < R; r++) {
                double thr = job->rec[r], q = 0.0, s = 0.0;
                int reached = 0;
                if (nd && thr <= 0) {
                    reached = 1, q = ne ? e[0].pr : 0.0, s = first_score;
                } else if (ne) {
                    /* numpy's searchsorted(rc, thr, side="left") among the true positives (NaN: none) */
                    Py_ssize_t lo = 0, hi = ne;
                    if (thr != thr) lo = ne;
                    while (lo < hi) {
                        Py_ssize_t mid = lo + (hi - lo) / 2;
                        if (e[mid].rc < thr) lo = mid + 1; else hi = mid;
                    }
                    if (lo < ne) reached = 1, q = e[lo].pr, s = e[lo].score;
                }
                if (!reached && job->quirks) stopped = 1;  /* pycocotools' IndexError ends its read-out loop */
                if (stopped) q = 0.0, s = 0.0;
                Py_ssize_t cell = (((t * R + r) * K + col) * A + a) * M + m;
                job->precision[cell] = q, job->scores[cell] = s;
            }
        }
    }
    return 0;
}

typedef struct {
    const Job *job;
    const Py_ssize_t *d_start, *g_start, *p_start;  /* [K + 1] each category's first detection, gt, sim entry */
    Py_ssize_t next;  /* the next category to take (shared; atomic) */
    int status;
} Plan;

static void *worker(void *arg) {
    Plan *plan = arg;
    const Job *job = plan->job;
    Work w;
    memset(&w, 0, sizeof w);
    int status = 0;
    for (;;) {
        Py_ssize_t k = __atomic_fetch_add(&plan->next, 1, __ATOMIC_RELAXED);
        if (k >= job->K || status) break;
        Py_ssize_t p = plan->p_start[k];
        status = match_category(job, &w, plan->d_start[k], plan->d_start[k + 1], plan->g_start[k],
                                plan->g_start[k + 1], &p);
        if (status == 0) status = accumulate_category(job, &w, k, plan->d_start[k], plan->d_start[k + 1]);
    }
    Scratch *all[] = {&w.cand, &w.flags, &w.outside, &w.taken, &w.row, &w.ranked, &w.tmp, &w.events, &w.counts,
                      &w.score, &w.area, &w.box};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]->data);
    if (status) __atomic_store_n(&plan->status, status, __ATOMIC_RELAXED);
    return NULL;
}

/* Cut the detections, ground truths and sim into categories, then evaluate them on job->threads threads (each
 * takes the next category not yet taken; categories write disjoint cells). */
static int run(const Job *job) {
    Py_ssize_t K = job->K;
    Py_ssize_t *starts = malloc((size_t)(3 * (K + 1)) * sizeof(Py_ssize_t));
    if (!starts) return -1;
    Py_ssize_t *d_start = starts, *g_start = starts + K + 1, *p_start = starts + 2 * (K + 1);
    Py_ssize_t d = 0, g = 0, p = 0;
    for (Py_ssize_t k = 0; k < K; k++) {
        d_start[k] = d, g_start[k] = g, p_start[k] = p;
        while (d < job->D && job->d_group[d] / job->I == k) {  /* each detection reads its group's row of sim */
            int64_t key = job->d_group[d];
            while (g < job->G && job->g_group[g] < key && job->g_group[g] / job->I == k) g++;
            Py_ssize_t gq = g;
            while (gq < job->G && job->g_group[gq] == key) gq++;
            for (; d < job->D && job->d_group[d] == key; d++) p += gq - g;
            g = gq;
        }
        while (g < job->G && job->g_group[g] / job->I == k) g++;
    }
    d_start[K] = d, g_start[K] = g, p_start[K] = p;
    int status = 0;
    if (d != job->D || g != job->G || (job->use_sim && p != job->P)) status = -2;
    Plan plan = {job, d_start, g_start, p_start, 0, 0};
    if (status == 0) {
        Py_ssize_t extra = job->threads - 1 < K - 1 ? job->threads - 1 : K - 1;
#ifndef _WIN32
        pthread_t *ids = extra > 0 ? malloc((size_t)extra * sizeof(pthread_t)) : NULL;
        Py_ssize_t started = 0;
        while (ids && started < extra && pthread_create(&ids[started], NULL, worker, &plan) == 0) started++;
        worker(&plan);
        for (Py_ssize_t i = 0; i < started; i++) pthread_join(ids[i], NULL);
        free(ids);
#else
        (void)extra;
        worker(&plan);
#endif
        status = plan.status;
    }
    free(starts);
    return status;
}

int cz_sized(Py_buffer *b, Py_ssize_t count, Py_ssize_t item, const char *name) {
    if (b->len != count * item) {
        PyErr_Format(PyExc_ValueError, "_cocoeval: %s has %zd bytes, expected %zd", name, b->len, count * item);
        return -1;
    }
    return 0;
}

static PyObject *evaluate(PyObject *self, PyObject *args) {
    (void)self;
    enum { NB = 23 };
    Py_buffer b[NB];
    memset(b, 0, sizeof b);
    Py_ssize_t I, K, K_out, threads;
    int use_sim, quirks;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*nnnppnw*w*w*w*", &b[0], &b[1], &b[2], &b[3],
                          &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10], &b[11], &b[12], &b[13], &b[14], &b[15],
                          &b[16], &b[17], &b[18], &I, &K, &K_out, &use_sim, &quirks, &threads, &b[19], &b[20],
                          &b[21], &b[22]))
        return NULL;
    Job job;
    memset(&job, 0, sizeof job);
    Py_ssize_t N = b[3].len / 8, D = b[0].len / 8, G = b[6].len / 8, A = b[15].len / 8;
    Py_ssize_t T = b[12].len / 8, R = b[13].len / 8, M = b[14].len / 8;
    job.D = D, job.G = G, job.P = b[11].len / 8, job.T = T, job.R = R, job.M = M, job.A = A, job.I = I, job.K = K;
    job.quirks = quirks, job.use_sim = use_sim, job.K_out = K_out, job.threads = threads;
    int ok = I >= 1 && K >= 0 && K_out >= 0 && threads >= 1 && M >= 1 && cz_sized(&b[18], K, 8, "slot") == 0 && cz_sized(&b[1], D, 8, "d_group") == 0 && cz_sized(&b[2], D, 8, "d_rank") == 0 &&
             cz_sized(&b[4], N, 8, "area") == 0 && (use_sim || cz_sized(&b[5], N, 32, "box") == 0) &&
             cz_sized(&b[7], G, 1, "g_crowd") == 0 && cz_sized(&b[8], A * G, 1, "g_ignore") == 0 &&
             cz_sized(&b[9], G, 1, "g_idnz") == 0 && (use_sim || cz_sized(&b[10], G, 32, "g_box") == 0) &&
             cz_sized(&b[16], A, 8, "area_hi") == 0 && cz_sized(&b[17], K * A, 8, "npig") == 0 &&
             cz_sized(&b[19], T * R * K_out * A * M, 8, "precision") == 0 &&
             cz_sized(&b[20], T * K_out * A * M, 8, "recall") == 0 && cz_sized(&b[21], T * R * K_out * A * M, 8, "scores") == 0 &&
             (b[22].len == 0 || cz_sized(&b[22], T * A * D, 8, "matched_gt") == 0);
    const int64_t *d_index = b[0].buf, *slot = b[18].buf;
    for (Py_ssize_t i = 0; ok && i < D; i++) ok = d_index[i] >= 0 && d_index[i] < N;
    for (Py_ssize_t k = 0; ok && k < K; k++) ok = slot[k] >= -1 && slot[k] < K_out;
    if (!ok && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_cocoeval: bad sizes or indices");
    PyObject *result = NULL;
    if (ok) {
        job.d_index = d_index, job.d_group = b[1].buf, job.d_rank = b[2].buf, job.score = b[3].buf;
        job.area = b[4].buf, job.box = b[5].buf, job.g_group = b[6].buf, job.g_crowd = b[7].buf;
        job.g_ignore = b[8].buf, job.g_idnz = b[9].buf, job.g_box = b[10].buf, job.sim = use_sim ? b[11].buf : NULL;
        job.thr = b[12].buf, job.rec = b[13].buf, job.max_dets = b[14].buf, job.area_lo = b[15].buf;
        job.area_hi = b[16].buf, job.npig = b[17].buf, job.slot = slot;
        job.precision = b[19].buf, job.recall = b[20].buf, job.scores = b[21].buf;
        job.matched_gt = b[22].len ? b[22].buf : NULL;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = run(&job);
        Py_END_ALLOW_THREADS
        if (status == -1) PyErr_NoMemory();
        else if (status == -2) PyErr_SetString(PyExc_ValueError, "_cocoeval: groups out of order or sim misaligned");
        else Py_INCREF(Py_None), result = Py_None;
    }
    for (int i = 0; i < NB; i++) PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"evaluate", evaluate, METH_VARARGS, "pycocotools' matching and accumulation (see the file's head)."},
    {"order", cz_order, METH_VARARGS, "The detections to evaluate, in evaluate()'s order (see order_run)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cocoeval", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cocoeval(void) { return PyModule_Create(&module); }

/* The ordering half of the compiled COCO evaluation (one extension with _cocoeval.c): the detections to evaluate in
 * evaluate()'s order, with pycocotools' ties, in O(N) passes instead of numpy's sorts. See order_run below.
 */
#include "_cocoeval.h"

#include <stdlib.h>
#include <string.h>

/* order(image, category, score, keep, num_images, num_cats, max_det, index, group, rank) -> (D, beyond)
 *
 * The detections to evaluate in evaluate()'s order: those with keep (bool[N]) by group = category * num_images +
 * image, within a group by decreasing score, ties in file order (two stable counting sorts, then a stable sort of
 * each group), cut at max_det per group. Writes the first D entries of index, group, rank (int64[N] each) and
 * returns D and the number cut. image, category int64[N] within range; score float64[N]. */
static int order_run(Py_ssize_t N, const int64_t *image, const int64_t *category, const double *score,
                     const uint8_t *keep, Py_ssize_t I, Py_ssize_t K, int64_t max_det, int64_t *index,
                     int64_t *group, int64_t *rank, Py_ssize_t *kept, Py_ssize_t *beyond) {
    Py_ssize_t buckets = I > K ? I : K, n = 0;
    int64_t *count = calloc((size_t)buckets + 1, sizeof(int64_t)), *tmp = malloc((size_t)(N ? N : 1) * sizeof(int64_t));
    Ranked *items = malloc(sizeof(Ranked) * 64), *spare = NULL;
    Py_ssize_t room_items = 64;
    if (!count || !tmp || !items) { free(count), free(tmp), free(items); return -1; }
    for (Py_ssize_t i = 0; i < N; i++)
        if (keep[i]) count[image[i] + 1]++;
    for (Py_ssize_t b = 0; b < I; b++) count[b + 1] += count[b];
    for (Py_ssize_t i = 0; i < N; i++)
        if (keep[i]) tmp[count[image[i]]++] = i, n++;
    memset(count, 0, ((size_t)buckets + 1) * sizeof(int64_t));
    for (Py_ssize_t i = 0; i < n; i++) count[category[tmp[i]] + 1]++;
    for (Py_ssize_t b = 0; b < K; b++) count[b + 1] += count[b];
    for (Py_ssize_t i = 0; i < n; i++) index[count[category[tmp[i]]]++] = tmp[i];
    Py_ssize_t out = 0, cut = 0;
    for (Py_ssize_t lo = 0; lo < n;) {
        int64_t key = category[index[lo]] * I + image[index[lo]];
        Py_ssize_t hi = lo + 1;
        while (hi < n && category[index[hi]] * I + image[index[hi]] == key) hi++;
        Py_ssize_t len = hi - lo;
        if (len > room_items) {
            Ranked *more = realloc(items, sizeof(Ranked) * (size_t)len);
            if (!more) { free(count), free(tmp), free(items), free(spare); return -1; }
            items = more, room_items = len;
            free(spare), spare = NULL;
        }
        for (Py_ssize_t i = 0; i < len; i++) items[i].score = score[index[lo + i]], items[i].index = (int32_t)i;
        if (len <= 16) {  /* insertion sort: stable, moves an item past strictly lower scores only */
            for (Py_ssize_t i = 1; i < len; i++) {
                Ranked x = items[i];
                Py_ssize_t j = i;
                while (j > 0 && items[j - 1].score < x.score) items[j] = items[j - 1], j--;
                items[j] = x;
            }
        } else {
            if (!spare && !(spare = malloc(sizeof(Ranked) * (size_t)room_items))) {
                free(count), free(tmp), free(items);
                return -1;
            }
            cz_sort_by_score(items, spare, len);
        }
        for (Py_ssize_t i = 0; i < len; i++) tmp[i] = index[lo + items[i].index];
        for (Py_ssize_t i = 0; i < len; i++) {
            if (i >= max_det) { cut++; continue; }
            index[out] = tmp[i], group[out] = key, rank[out] = i, out++;
        }
        lo = hi;
    }
    free(count), free(tmp), free(items), free(spare);
    *kept = out, *beyond = cut;
    return 0;
}

PyObject *cz_order(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b[7];
    memset(b, 0, sizeof b);
    Py_ssize_t I, K;
    long long max_det;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnLw*w*w*", &b[0], &b[1], &b[2], &b[3], &I, &K, &max_det, &b[4], &b[5],
                          &b[6]))
        return NULL;
    Py_ssize_t N = b[0].len / 8;
    int ok = I >= 0 && K >= 0 && cz_sized(&b[1], N, 8, "category") == 0 && cz_sized(&b[2], N, 8, "score") == 0 &&
             cz_sized(&b[3], N, 1, "keep") == 0 && cz_sized(&b[4], N, 8, "index") == 0 && cz_sized(&b[5], N, 8, "group") == 0 &&
             cz_sized(&b[6], N, 8, "rank") == 0;
    const int64_t *image = b[0].buf, *category = b[1].buf;
    const uint8_t *keep = b[3].buf;
    for (Py_ssize_t i = 0; ok && i < N; i++)
        ok = !keep[i] || (image[i] >= 0 && image[i] < I && category[i] >= 0 && category[i] < K);
    if (!ok && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_cocoeval: image or category out of range");
    PyObject *result = NULL;
    if (ok) {
        Py_ssize_t kept = 0, beyond = 0;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = order_run(N, image, category, b[2].buf, keep, I, K, (int64_t)max_det, b[4].buf, b[5].buf, b[6].buf,
                           &kept, &beyond);
        Py_END_ALLOW_THREADS
        if (status) PyErr_NoMemory();
        else result = Py_BuildValue("nn", kept, beyond);
    }
    for (int i = 0; i < 7; i++) PyBuffer_Release(&b[i]);
    return result;
}


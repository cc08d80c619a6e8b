/* What the two C files of convzoo.evaluation._cocoeval (_cocoeval.c: matching and accumulation; _cocoorder.c: the
 * ordering) share. */
#ifndef CONVZOO_COCOEVAL_H
#define CONVZOO_COCOEVAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct { double score; int32_t index; } Ranked;

/* Sort by decreasing score, ties in index order (numpy's stable argsort of -score). */
void cz_sort_by_score(Ranked *items, Ranked *tmp, Py_ssize_t n);

/* 0 when the buffer holds count items of item bytes, else -1 with a ValueError naming it. */
int cz_sized(Py_buffer *b, Py_ssize_t count, Py_ssize_t item, const char *name);

/* order(...): see _cocoorder.c. */
PyObject *cz_order(PyObject *self, PyObject *args);

#endif

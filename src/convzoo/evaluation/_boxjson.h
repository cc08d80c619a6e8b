/* What the two C files of convzoo.evaluation._boxjson (_boxjson.c: the JSON scan and box results; _maskjson.c: mask
 * results) share. */
#ifndef CONVZOO_BOXJSON_H
#define CONVZOO_BOXJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>

typedef struct { char *data; size_t used, size; int fixed; } Column;  /* a growing array (fixed: of size bytes) */
enum { COLUMNS = 9 };  /* image, category, score, box; for mask results counts' ends, h, w, counts, area */
enum { OK = 0, BAD = 1, MORE = 2 };  /* MORE: the record runs past the buffer */

typedef struct {
    int64_t image, category, h, w;  /* h, w: the mask's size (mask results) */
    double score, box[4], area;  /* area: the mask's (rleArea), NaN where pycocotools must measure it */
    long others;  /* members skipped */
    int has_box;
} Record;

int push(Column *c, const void *value);
int push_bytes(Column *c, const char *bytes, size_t n);
const char *skip_space(const char *p);
int number(const char *p, const char *stop, const char **end, int *integral);
int to_int64(const char *p, const char *end, int64_t *value);

/* Parse the file at path (bytes) into columns without the GIL: image, category, score, box (4 a record) and, for
 * mask results (masks), the counts' ends, h, w, the counts' bytes and the masks' areas. */
int parse_file(PyObject *arg, Column columns[COLUMNS], long *others, int masks, long *boxes);
PyObject *column_bytes(const Column *c);

/* _maskjson.c */
int segmentation(const char *p, const char *stop, const char **end, Record *out, Column *counts);
PyObject *read_masks(PyObject *self, PyObject *arg);

#endif

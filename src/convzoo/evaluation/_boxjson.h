/* What the two C files of convzoo.evaluation._boxjson (_boxjson.c: the JSON scan and box results; _maskjson.c: mask
 * results) share. */
#ifndef CONVZOO_BOXJSON_H
#define CONVZOO_BOXJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>

typedef struct { char *data; size_t used, size; } Column;  /* a growing array of 8-byte values */
enum { OK = 0, BAD = 1, MORE = 2 };  /* MORE: the record runs past the buffer */

typedef struct {
    int64_t image, category, h, w;  /* h, w: the mask's size (mask results) */
    double score, box[4];
    long others;  /* members skipped */
    int has_box;
} Record;

int push(Column *c, const void *value);
int push_bytes(Column *c, const char *bytes, size_t n);
const char *skip_space(const char *p);
int number(const char *p, const char *stop, const char **end, int *integral);
int to_int64(const char *p, const char *end, int64_t *value);

/* Parse the file at path (bytes) into columns without the GIL: image, category, score, box (4 a record) and, for
 * mask results (masks: the list their RLE dicts go to), the counts' ends, h, w and the counts' bytes. */
int parse_file(PyObject *arg, Column columns[8], long *others, PyObject *masks, long *boxes);
PyObject *column_bytes(const Column *c);

/* _maskjson.c */
int segmentation(const char *p, const char *stop, const char **end, Record *out, Column *counts);
int flush(Column columns[8], PyObject *list);
enum { FLUSH = 1 << 20 };
PyObject *read_masks(PyObject *self, PyObject *arg);

#endif

/* One helper of the compiled evaluation's C files: run a piece of work on several threads. */
#ifndef CONVZOO_PARALLEL_H
#define CONVZOO_PARALLEL_H

#include <Python.h>
#ifndef _WIN32
#include <pthread.h>
#endif

/* work(parts + i * size) for i < n, on n threads (this one the first; a thread that cannot start runs here). */
static inline void in_parallel(void *(*work)(void *), void *parts, size_t size, Py_ssize_t n) {
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

#endif

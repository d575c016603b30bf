/* The device's FP32 peak for cltrain bench, measured with kernels/peak.cl.
 *
 * The kernel runs through OpenCL directly, on a context of its own on the device the
 * library chose: the tool reaches no library internals, and the library needs no API for
 * a benchmark-only kernel. */
#ifndef CLTRAIN_BENCH_PEAK_H
#define CLTRAIN_BENCH_PEAK_H

#include <stddef.h>

#include "cltrain/device.h"

typedef struct bench_peak_result {
    double best_gflops;   /* the fastest launch, by its profiling event */
    double median_gflops; /* the median launch of the best chain count */
    unsigned chains;      /* float16 accumulators per work-item (PEAK_ACC) that won */
    size_t work_items;    /* launched: a few per compute unit */
    size_t launches;      /* timed launches per chain count */
    double launch_ms;     /* median duration of one launch */
} bench_peak_result;

/* Runs the peak kernel on `dev` with launches of about `launch_s` seconds each and
 * `launches` timed launches per chain count (after one warm-up). Returns 0, or -1 with
 * a message in err. */
int bench_peak_run(const ct_device_info *dev, double launch_s, size_t launches,
                   bench_peak_result *out, char *err, size_t errcap);

#endif

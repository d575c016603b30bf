/* plot — SVG pictures of a training run, with no dependencies, for any browser:
 * the loss curve (--plot FILE.svg), several runs side by side (`cltrain compare`), a log
 * re-plotted later (`cltrain plot`), and a confusion matrix (`cltrain eval --plot`).
 *
 * The loss plot draws each run's per-batch loss faintly with a smoothed line over it, the
 * test accuracy per epoch on a right-hand axis (points and line), dashed vertical markers
 * at epoch ends when all runs share them, a title, a subtitle with the run's settings and
 * a legend above the plot area. Smoothing is TensorBoard's: a debiased exponential moving
 * average  m_k = w m_(k-1) + (1 - w) y_k,  s_k = m_k / (1 - w^k)  over the finite values
 * in order, with weight w (default 0.9). Axis ticks follow the 1-2-5 rule. Values that
 * are NaN or infinite (or <= 0 on a log axis) are skipped, and the line breaks there.
 * Series longer than about four points per pixel column are thinned to each column's
 * minimum and maximum, so the envelope survives and a million steps stay a small file.
 * Colours are the Okabe-Ito palette, readable with the common colour-vision deficiencies.
 * All text is XML-escaped; invalid UTF-8 and control characters become '?'. */
#ifndef CLTRAIN_PLOT_H
#define CLTRAIN_PLOT_H

#include <stddef.h>

#include "csvlog.h"

/* One run. Arrays are borrowed for the call. */
typedef struct plot_series {
    const char *name;   /* legend label; NULL or "" for a single unnamed run */
    const double *step; /* (n,) global step of each logged batch */
    const double *loss; /* (n,) that batch's loss */
    size_t n;
    const double *epoch_step;    /* (nepochs,) global step at each epoch's end */
    const double *test_accuracy; /* (nepochs,) fraction in [0, 1]; NULL or NaN: none */
    size_t nepochs;
} plot_series;

typedef struct plot_options {
    const char *title;    /* NULL: "training loss" */
    const char *subtitle; /* the run's settings, wrapped to at most three lines; NULL: none */
    int width, height;    /* pixels; 0: 960 x 540 */
    double smoothing;     /* EMA weight in (0, 1); 0: 0.9; negative: no smoothed line */
    int log_y;            /* logarithmic loss axis */
} plot_options;

/* The loss plot as a NUL-terminated SVG document (malloc'd; the caller frees it), or
 * NULL when out of memory. */
char *plot_loss_svg(const plot_series *series, size_t nseries, const plot_options *opt);

/* The same from a log read by csvlog_read: one series per run, batch rows giving the
 * losses, epoch rows the epoch ends and test accuracies. */
char *plot_log_svg(const csvlog_data *log, const plot_options *opt);

/* A k x k confusion matrix: counts[t * k + p] images of true class t predicted as p.
 * Cells are shaded by the fraction of their row (so each class reads as its own
 * distribution) and show the counts; a recall column and a colour scale sit on the right.
 * names: k class names, or NULL for "0".."k-1". title: NULL for "confusion matrix". */
char *plot_confusion_svg(const long long *counts, size_t k, const char *const *names,
                         const char *title);

/* Writes `svg` to `path` through a temporary file renamed into place. Returns 0, or -1
 * with errno set. */
int plot_save(const char *path, const char *svg);

/* ---- helpers, exposed for tests ---- */

/* Ticks at multiples of a 1-2-5 step (1, 2 or 5 times a power of ten) that lie in
 * [lo, hi]: the smallest such step giving at most target + 1 ticks (hi > lo required).
 * With target >= 4 there are always at least two: the steps grow by 2.5 at most.
 * Writes at most cap values; returns how many there are. *step receives the spacing. */
size_t plot_nice_ticks(double lo, double hi, int target, double *ticks, size_t cap, double *step);

/* A tick label for value v on an axis whose ticks are `step` apart: just enough decimals
 * for the step; steps of 1000 and more count in "k", of 100000 and more in "M"
 * (25000 at step 5000 -> "25k", 1500000 at step 500000 -> "1.5M"); zero is "0". */
void plot_format_tick(char *buf, size_t size, double v, double step);

/* The smoothing described above, with weight w in [0, 1): out[i] is NaN where y[i] is not
 * finite. out may be y. */
void plot_ema(const double *y, size_t n, double w, double *out);

#endif

/* progress — what `cltrain train` shows on stderr while it runs.
 *
 * On a terminal: one status line redrawn in place with '\r',
 *
 *   epoch 3/10 [██████████▌         ] 234/469  loss 0.2345  5123 img/s  ETA 0:01:23
 *
 * and one line per finished epoch that stays. Colour only when the stream is a terminal,
 * NO_COLOR is unset (https://no-color.org) and TERM is not "dumb"; block characters only
 * under a UTF-8 locale, '#' otherwise.
 * Not a terminal (a pipe, `| tee`, a file): never a '\r', only the per-epoch lines, each
 * flushed when written; at the verbose level also a batch line every `line_s` seconds.
 * The quiet level prints nothing.
 *
 * The formatting functions are pure, so tests check them without a terminal. */
#ifndef CLTRAIN_PROGRESS_H
#define CLTRAIN_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

/* Where training stands, as the caller knows it after a batch. */
typedef struct progress_state {
    int epoch, epochs;     /* 1-based epoch, number of epochs */
    long long step, steps; /* batches done in this epoch, batches per epoch */
    double loss;           /* running mean loss over this epoch (NaN: none yet) */
    double images_per_s;   /* recent throughput (<= 0 or NaN: unknown) */
    double elapsed_s;      /* seconds of training so far (used for the ETA and throttling) */
} progress_state;

/* One finished epoch. */
typedef struct progress_epoch {
    int epoch, epochs;
    double train_loss;    /* mean over the epoch */
    double test_loss;     /* NaN: no test set */
    double test_accuracy; /* fraction in [0, 1]; NaN: no test set */
    double images_per_s;  /* over the epoch; <= 0 or NaN: left out */
    double epoch_s;       /* this epoch's seconds */
    double elapsed_s;     /* seconds of training so far */
    double lr;            /* learning rate at the end (shown when verbose; NaN: left out) */
} progress_epoch;

/* How a line is drawn. */
typedef struct progress_style {
    int width;   /* columns available; the line uses at most width - 1 */
    int color;   /* ANSI colours */
    int unicode; /* block characters (UTF-8) for the bar, else '#' and '-' */
} progress_style;

/* Seconds left in the whole run (all epochs), from the mean time per batch so far; -1
 * when unknown (no batch done yet). */
double progress_eta(const progress_state *s);

/* "h:mm:ss" (e.g. "0:01:23", "27:46:40"); "-:--:--" for a negative or non-finite time.
 * Returns the length written, like snprintf. */
int progress_format_time(char *buf, size_t size, double seconds);

/* The status line, without '\r' or newline. A NULL style means 80 columns, no colour,
 * ASCII. Fields are dropped from the right (bar first) when the width is too small.
 * Returns the number of bytes written (< size). */
size_t progress_format(char *buf, size_t size, const progress_state *s,
                       const progress_style *style);

/* The line for a finished epoch, without the newline; `verbose` adds the learning rate
 * and the total time. Returns the number of bytes written (< size). */
size_t progress_format_epoch(char *buf, size_t size, const progress_epoch *e, int verbose,
                             int color);

/* ---- the writer ---- */

enum { PROGRESS_QUIET = -1, PROGRESS_NORMAL = 0, PROGRESS_VERBOSE = 1 };
enum { PROGRESS_AUTO = 0, PROGRESS_ON = 1, PROGRESS_OFF = -1 };

/* All zero means: normal level, everything detected from the stream and environment. */
typedef struct progress_options {
    int level;       /* PROGRESS_QUIET, PROGRESS_NORMAL or PROGRESS_VERBOSE */
    int tty;         /* PROGRESS_AUTO: isatty(fileno(out)) */
    int color;       /* PROGRESS_AUTO: tty, NO_COLOR unset and TERM not "dumb" */
    int unicode;     /* PROGRESS_AUTO: a UTF-8 locale in LC_ALL / LC_CTYPE / LANG */
    int width;       /* 0: the terminal's width, else $COLUMNS, else 80 */
    double redraw_s; /* least seconds between redraws on a terminal (0: 0.1) */
    double line_s;   /* verbose, not a terminal: seconds between batch lines (0: 10) */
} progress_options;

typedef struct progress progress;

/* A writer on `out` (normally stderr). NULL options: all defaults. Returns NULL when out
 * of memory. Free with progress_free. */
progress *progress_create(FILE *out, const progress_options *opt);

/* After a batch: redraws the status line on a terminal (at most every redraw_s seconds
 * of s->elapsed_s, and always on an epoch's last batch). */
void progress_update(progress *p, const progress_state *s);

/* At an epoch's end: replaces the status line by the epoch line. */
void progress_epoch_end(progress *p, const progress_epoch *e);

/* A message line (printf format) that does not garble the status line. Printed at every
 * level but quiet; a newline is added. */
void progress_note(progress *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Ends the status line if one is showing. NULL is allowed. */
void progress_free(progress *p);

#endif

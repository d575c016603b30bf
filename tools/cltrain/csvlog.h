/* csvlog — the training log as CSV (--log FILE.csv), its multi-run variant for
 * `cltrain compare`, and a reader for files this writer produced (`cltrain plot`, tests).
 *
 * Columns, in this order (the multi-run variant puts a `run` column first):
 *
 *   kind,epoch,step,loss,lr,images_per_s,elapsed_s,train_loss,test_loss,test_accuracy
 *
 *   kind           `batch` (one row per logged batch) or `epoch` (one row per epoch end)
 *   epoch          1-based epoch number
 *   step           global step: optimizer steps since the start of training (at the end of
 *                  the epoch for an `epoch` row)
 *   loss           batch rows: that batch's mean loss
 *   lr             batch rows: learning rate used for that step
 *   images_per_s   batch rows: training throughput over the recent batches
 *   elapsed_s      seconds since training started (both kinds)
 *   train_loss     epoch rows: mean training loss over the epoch
 *   test_loss      epoch rows: mean loss on the test set (empty without a test set)
 *   test_accuracy  epoch rows: fraction of test images classified correctly, in [0, 1]
 *                  (empty without a test set)
 *
 * A field that does not apply to the row's kind is empty. Numbers are printed with %.9g,
 * enough digits to round-trip any float32 exactly; a NaN that is a value (a diverged loss)
 * is written `nan`, infinities `inf`/`-inf`. Each row is flushed as it is written, so the
 * file can be followed while training runs. Run names are quoted as RFC 4180 asks when
 * they hold a comma, a quote or a line break. */
#ifndef CLTRAIN_CSVLOG_H
#define CLTRAIN_CSVLOG_H

#include <stddef.h>

typedef struct csvlog csvlog;

/* Creates (or truncates) `path` and writes the header. `with_run` nonzero gives the
 * multi-run layout with a leading `run` column. Returns 0, or -1 with errno set.
 * The caller frees the log with csvlog_close. */
int csvlog_open(const char *path, int with_run, csvlog **out);

/* One `batch` row. `run` names the configuration in the multi-run layout and is ignored
 * otherwise (NULL allowed there). Returns 0, or -1 with errno set on a write error. */
int csvlog_batch(csvlog *log, const char *run, int epoch, long long step, double loss, double lr,
                 double images_per_s, double elapsed_s);

/* One `epoch` row. Pass NAN for test_loss and test_accuracy when there is no test set;
 * they are then left empty. */
int csvlog_epoch(csvlog *log, const char *run, int epoch, long long step, double elapsed_s,
                 double train_loss, double test_loss, double test_accuracy);

/* Flushes and closes; returns 0, or -1 with errno set if anything failed to reach the
 * file. NULL is allowed. */
int csvlog_close(csvlog *log);

/* ---- reading ---- */

typedef enum csvlog_kind { CSVLOG_BATCH = 0, CSVLOG_EPOCH = 1 } csvlog_kind;

/* One row as read back. Numeric fields that were empty read as NaN. */
typedef struct csvlog_row {
    csvlog_kind kind;
    size_t run; /* index into csvlog_data.runs */
    int epoch;
    long long step;
    double loss, lr, images_per_s, elapsed_s;
    double train_loss, test_loss, test_accuracy;
} csvlog_row;

typedef struct csvlog_data {
    csvlog_row *rows; /* in file order */
    size_t nrows;
    char **runs; /* distinct run names in order of first appearance; one run named ""
                    for a file without a run column */
    size_t nruns;
} csvlog_data;

/* Reads a log written by this writer. Columns are found by their header names, so their
 * order may differ and unknown columns are ignored; `kind` is required. On failure returns
 * -1 and writes "FILE:LINE: what" into err (which may be NULL). Free with csvlog_data_free. */
int csvlog_read(const char *path, csvlog_data *out, char *err, size_t errsize);
void csvlog_data_free(csvlog_data *d);

#endif

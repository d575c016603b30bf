/* csvlog — CSV training log writer and reader; the layout is described in csvlog.h. */
#include "csvlog.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct csvlog {
    FILE *f;
    int with_run;
    int failed; /* a write failed earlier; errno of that failure */
};

static const char *const columns[] = {"kind",      "epoch",        "step",      "loss",
                                      "lr",        "images_per_s", "elapsed_s", "train_loss",
                                      "test_loss", "test_accuracy"};
enum { NCOLS = sizeof columns / sizeof columns[0] };

int csvlog_open(const char *path, int with_run, csvlog **out)
{
    *out = NULL;
    csvlog *log = calloc(1, sizeof *log);
    if (!log)
        return -1;
    log->f = fopen(path, "w");
    if (!log->f) {
        int e = errno;
        free(log);
        errno = e;
        return -1;
    }
    log->with_run = with_run != 0;
    if (log->with_run)
        fputs("run,", log->f);
    for (int i = 0; i < NCOLS; i++)
        fprintf(log->f, "%s%c", columns[i], i + 1 < NCOLS ? ',' : '\n');
    if (fflush(log->f) != 0 || ferror(log->f)) {
        int e = errno ? errno : EIO;
        fclose(log->f);
        free(log);
        errno = e;
        return -1;
    }
    *out = log;
    return 0;
}

/* A number field: %.9g round-trips float32; NaN and infinities get fixed spellings
 * because printf's ("-nan", "inf") vary between C libraries. */
static void put_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("nan", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.9g", v);
}

static void put_run(FILE *f, const char *run)
{
    if (!run)
        run = "";
    if (!strpbrk(run, ",\"\r\n")) {
        fputs(run, f);
    } else {
        fputc('"', f);
        for (const char *p = run; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    }
    fputc(',', f);
}

static int end_row(csvlog *log)
{
    fputc('\n', log->f);
    if (fflush(log->f) != 0 || ferror(log->f)) {
        if (!log->failed)
            log->failed = errno ? errno : EIO;
        errno = log->failed;
        return -1;
    }
    return 0;
}

int csvlog_batch(csvlog *log, const char *run, int epoch, long long step, double loss, double lr,
                 double images_per_s, double elapsed_s)
{
    FILE *f = log->f;
    if (log->with_run)
        put_run(f, run);
    fprintf(f, "batch,%d,%lld,", epoch, step);
    put_num(f, loss);
    fputc(',', f);
    put_num(f, lr);
    fputc(',', f);
    put_num(f, images_per_s);
    fputc(',', f);
    put_num(f, elapsed_s);
    fputs(",,,", f);
    return end_row(log);
}

int csvlog_epoch(csvlog *log, const char *run, int epoch, long long step, double elapsed_s,
                 double train_loss, double test_loss, double test_accuracy)
{
    FILE *f = log->f;
    if (log->with_run)
        put_run(f, run);
    fprintf(f, "epoch,%d,%lld,,,,", epoch, step);
    put_num(f, elapsed_s);
    fputc(',', f);
    put_num(f, train_loss);
    fputc(',', f);
    if (!isnan(test_loss))
        put_num(f, test_loss);
    fputc(',', f);
    if (!isnan(test_accuracy))
        put_num(f, test_accuracy);
    return end_row(log);
}

int csvlog_close(csvlog *log)
{
    if (!log)
        return 0;
    int e = log->failed;
    if (fclose(log->f) != 0 && !e)
        e = errno ? errno : EIO;
    free(log);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

/* ---- reading ---- */

typedef struct reader {
    const char *path;
    char *text; /* the whole file, NUL-terminated */
    size_t pos, len;
    long line; /* line number where the current record starts */
    long next_line;
    char *err;
    size_t errsize;
} reader;

static int fail(reader *r, const char *fmt, ...)
{
    if (r->err && r->errsize) {
        int n = snprintf(r->err, r->errsize, "%s:%ld: ", r->path, r->line);
        if (n >= 0 && (size_t)n < r->errsize) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->errsize - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* Splits the next record into fields, in place: quotes removed, "" unescaped, each
 * field NUL-terminated. Returns the field count (0 at end of input), -1 on a syntax
 * error. Fields beyond `cap` are parsed and dropped. */
static int next_record(reader *r, char **fields, int cap)
{
    if (r->pos >= r->len)
        return 0;
    r->line = r->next_line;
    int n = 0;
    for (;;) {
        char *start = r->text + r->pos, *w = start;
        if (r->text[r->pos] == '"') {
            r->pos++;
            for (;;) {
                if (r->pos >= r->len)
                    return fail(r, "a quoted field is not closed");
                char c = r->text[r->pos++];
                if (c == '"') {
                    if (r->text[r->pos] == '"') {
                        *w++ = '"';
                        r->pos++;
                        continue;
                    }
                    break;
                }
                if (c == '\n')
                    r->next_line++;
                *w++ = c;
            }
            char c = r->text[r->pos];
            if (c != ',' && c != '\n' && c != '\r' && c != '\0')
                return fail(r, "text after a closing quote");
        } else {
            while (r->pos < r->len && !strchr(",\r\n", r->text[r->pos]))
                r->pos++;
            w = r->text + r->pos;
        }
        char sep = r->pos < r->len ? r->text[r->pos] : '\n';
        *w = '\0';
        if (n < cap)
            fields[n] = start;
        n++;
        if (sep == ',') {
            r->pos++;
            continue;
        }
        /* text[pos] may be the NUL just written over the separator: go by `sep` */
        r->pos++;
        if (sep == '\r' && r->pos < r->len && r->text[r->pos] == '\n')
            r->pos++;
        r->next_line++;
        return n;
    }
}

static int parse_num(reader *r, const char *name, const char *s, double *out)
{
    if (!*s) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end)
        return fail(r, "%s: '%s' is not a number", name, s);
    *out = v;
    return 0;
}

static int parse_int(reader *r, const char *name, const char *s, long long lo, long long hi,
                     long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || end == s || *end || errno || v < lo || v > hi)
        return fail(r, "%s: '%s' is not a whole number in [%lld, %lld]", name, s, lo, hi);
    *out = v;
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (buf && bad) {
        free(buf);
        errno = e ? e : EIO;
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static long find_run(csvlog_data *d, const char *name)
{
    for (size_t i = 0; i < d->nruns; i++)
        if (strcmp(d->runs[i], name) == 0)
            return (long)i;
    char **runs = realloc(d->runs, (d->nruns + 1) * sizeof *runs);
    if (!runs)
        return -1;
    d->runs = runs;
    size_t len = strlen(name) + 1;
    if (!(runs[d->nruns] = malloc(len)))
        return -1;
    memcpy(runs[d->nruns], name, len);
    return (long)d->nruns++;
}

enum { COL_RUN = NCOLS, MAXCOLS = 64 };

int csvlog_read(const char *path, csvlog_data *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    reader r = {.path = path, .line = 1, .next_line = 1, .err = err, .errsize = errsize};
    csvlog_data d = {0};
    int rc = -1;
    size_t cap = 0;
    if (!(r.text = read_all(path, &r.len))) {
        r.line = 0;
        fail(&r, "cannot read: %s", strerror(errno));
        goto cleanup;
    }

    /* which field holds each known column; -1 when absent */
    int where[NCOLS + 1];
    for (int i = 0; i <= NCOLS; i++)
        where[i] = -1;
    char *f[MAXCOLS];
    int nf = next_record(&r, f, MAXCOLS);
    if (nf <= 0) {
        if (nf == 0)
            fail(&r, "empty file, expected a header line");
        goto cleanup;
    }
    for (int j = 0; j < nf && j < MAXCOLS; j++) {
        for (int i = 0; i < NCOLS; i++)
            if (strcmp(f[j], columns[i]) == 0)
                where[i] = j;
        if (strcmp(f[j], "run") == 0)
            where[COL_RUN] = j;
    }
    if (where[0] < 0) {
        fail(&r, "the header has no 'kind' column; not a cltrain log");
        goto cleanup;
    }
    if (where[COL_RUN] < 0 && find_run(&d, "") < 0)
        goto nomem;

    for (;;) {
        int n = next_record(&r, f, MAXCOLS);
        if (n < 0)
            goto cleanup;
        if (n == 0)
            break;
        if (n == 1 && f[0][0] == '\0')
            continue; /* blank line */
        if (n != nf) {
            fail(&r, "%d fields, the header has %d", n, nf);
            goto cleanup;
        }
        csvlog_row row;
        const char *kind = f[where[0]];
        if (strcmp(kind, "batch") == 0) {
            row.kind = CSVLOG_BATCH;
        } else if (strcmp(kind, "epoch") == 0) {
            row.kind = CSVLOG_EPOCH;
        } else {
            fail(&r, "kind '%s' is neither 'batch' nor 'epoch'", kind);
            goto cleanup;
        }
        long long v = 0;
        if (where[1] >= 0 && parse_int(&r, "epoch", f[where[1]], 0, 0x7fffffff, &v) < 0)
            goto cleanup;
        row.epoch = (int)v;
        v = 0;
        if (where[2] >= 0 && parse_int(&r, "step", f[where[2]], 0, 0x7fffffffffffffffLL, &v) < 0)
            goto cleanup;
        row.step = v;
        /* the numeric columns, by their index in `columns` */
        double *num[NCOLS] = {
            [3] = &row.loss,          [4] = &row.lr,         [5] = &row.images_per_s,
            [6] = &row.elapsed_s,     [7] = &row.train_loss, [8] = &row.test_loss,
            [9] = &row.test_accuracy,
        };
        for (int i = 3; i < NCOLS; i++) {
            *num[i] = NAN;
            if (where[i] >= 0 && parse_num(&r, columns[i], f[where[i]], num[i]) < 0)
                goto cleanup;
        }
        long run = where[COL_RUN] >= 0 ? find_run(&d, f[where[COL_RUN]]) : 0;
        if (run < 0)
            goto nomem;
        row.run = (size_t)run;
        if (d.nrows == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            csvlog_row *rows = realloc(d.rows, ncap * sizeof *rows);
            if (!rows)
                goto nomem;
            d.rows = rows;
            cap = ncap;
        }
        d.rows[d.nrows++] = row;
    }
    *out = d;
    memset(&d, 0, sizeof d);
    rc = 0;
    goto cleanup;
nomem:
    fail(&r, "out of memory");
cleanup:
    csvlog_data_free(&d);
    free(r.text);
    return rc;
}

void csvlog_data_free(csvlog_data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nruns; i++)
        free(d->runs[i]);
    free(d->runs);
    free(d->rows);
    memset(d, 0, sizeof *d);
}

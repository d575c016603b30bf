/* tests/unit/test_report.c — the run-reporting pieces of the cltrain tool: CSV log
 * (write, read back, exact layout), SVG plots (well-formed XML, point counts, 1-2-5 ticks,
 * NaN handling, escaping), TensorBoard event files (CRC32C vectors, record framing,
 * decoding, and TensorBoard's own reader when installed) and the progress line.
 *
 * References are independent of the code under test: the RFC 3720 CRC32C vectors and a
 * bitwise CRC here against the tool's table-driven one, a protobuf decoder written here,
 * a small XML well-formedness checker here (and xmllint when installed), and expected
 * strings spelled out by hand. Host-only: no OpenCL device is needed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tools/cltrain/csvlog.h"
#include "../../tools/cltrain/plot.h"
#include "../../tools/cltrain/progress.h"
#include "../../tools/cltrain/tboard.h"
#include "testutil.h"

/* ---- fixture: a fresh temporary folder per test (tests/common/testutil.h) ---- */

TestSuite(csvlog, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);
TestSuite(svg, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);
TestSuite(tboard, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);
TestSuite(progress);

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + k, needle))
        n++;
    return n;
}

/* ================================ CSV ================================ */

Test(csvlog, exact_column_layout)
{
    const char *path = tu_tmp_path("log.csv");
    csvlog *log;
    cr_assert_eq(csvlog_open(path, 0, &log), 0);
    cr_assert_eq(csvlog_batch(log, NULL, 1, 10, 2.302585f, 0.1f, 1234.5, 0.75), 0);
    cr_assert_eq(csvlog_batch(log, NULL, 1, 20, NAN, 0.1f, INFINITY, 1.5), 0);
    cr_assert_eq(csvlog_epoch(log, NULL, 1, 469, 12.25, 0.5, 0.25, 0.9875), 0);
    cr_assert_eq(csvlog_epoch(log, NULL, 2, 938, 24.5, 0.125, NAN, NAN), 0);
    cr_assert_eq(csvlog_close(log), 0);
    char *text = tu_read_file(path, NULL);
    /* %.9g of the float32 values, as doubles: 2.302585f is 2.30258488655090332... */
    const char *want = "kind,epoch,step,loss,lr,images_per_s,elapsed_s,train_loss,test_loss,"
                       "test_accuracy\n"
                       "batch,1,10,2.30258489,0.100000001,1234.5,0.75,,,\n"
                       "batch,1,20,nan,0.100000001,inf,1.5,,,\n"
                       "epoch,1,469,,,,12.25,0.5,0.25,0.9875\n"
                       "epoch,2,938,,,,24.5,0.125,,\n";
    cr_assert_str_eq(text, want);
    free(text);
}

Test(csvlog, rows_are_flushed_as_written)
{
    const char *path = tu_tmp_path("live.csv");
    csvlog *log;
    cr_assert_eq(csvlog_open(path, 0, &log), 0);
    cr_assert_eq(csvlog_batch(log, NULL, 1, 1, 1.0, 0.1, 10, 0.1), 0);
    /* read through a second handle while the writer is still open */
    char *text = tu_read_file(path, NULL);
    cr_assert(strstr(text, "batch,1,1,1,0.1,10,0.1,,,\n") != NULL, "not flushed:\n%s", text);
    free(text);
    csvlog_close(log);
}

/* splitmix64, for reproducible test values */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Float32 values from every binade, sign and a few specials. */
static float any_float(uint64_t *s)
{
    uint32_t bits = (uint32_t)mix(s);
    float f;
    memcpy(&f, &bits, sizeof f);
    return isnan(f) ? 1.5f : f;
}

Test(csvlog, float32_values_round_trip_exactly)
{
    const char *path = tu_tmp_path("rt.csv");
    enum { N = 2000 };
    float v[N][6];
    uint64_t seed = 42;
    csvlog *log;
    cr_assert_eq(csvlog_open(path, 0, &log), 0);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 6; j++)
            v[i][j] = any_float(&seed);
        if (i % 2 == 0)
            cr_assert_eq(
                csvlog_batch(log, NULL, i / 100 + 1, i, v[i][0], v[i][1], v[i][2], v[i][3]), 0);
        else
            cr_assert_eq(
                csvlog_epoch(log, NULL, i / 100 + 1, i, v[i][3], v[i][4], v[i][5], v[i][0]), 0);
    }
    cr_assert_eq(csvlog_close(log), 0);

    csvlog_data d;
    char err[256];
    cr_assert_eq(csvlog_read(path, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.nrows, (size_t)N);
    cr_assert_eq(d.nruns, 1);
    cr_assert_str_eq(d.runs[0], "");
    /* %.9g holds 9 significant digits, which always identify a float32: compare the
     * values read back, rounded to float, bit for bit (tolerance zero) */
    for (int i = 0; i < N; i++) {
        const csvlog_row *r = &d.rows[i];
        cr_assert_eq(r->epoch, i / 100 + 1);
        cr_assert_eq(r->step, i);
        if (i % 2 == 0) {
            cr_assert_eq(r->kind, CSVLOG_BATCH);
            double got[4] = {r->loss, r->lr, r->images_per_s, r->elapsed_s};
            for (int j = 0; j < 4; j++)
                cr_assert((float)got[j] == v[i][j], "row %d col %d: %.9g != %.9g", i, j, got[j],
                          (double)v[i][j]);
            cr_assert(isnan(r->train_loss) && isnan(r->test_loss) && isnan(r->test_accuracy));
        } else {
            cr_assert_eq(r->kind, CSVLOG_EPOCH);
            double got[4] = {r->elapsed_s, r->train_loss, r->test_loss, r->test_accuracy};
            float want[4] = {v[i][3], v[i][4], v[i][5], v[i][0]};
            for (int j = 0; j < 4; j++)
                cr_assert((float)got[j] == want[j], "row %d col %d: %.9g != %.9g", i, j, got[j],
                          (double)want[j]);
            cr_assert(isnan(r->loss) && isnan(r->lr) && isnan(r->images_per_s));
        }
    }
    csvlog_data_free(&d);
}

Test(csvlog, multi_run_names_are_quoted_and_read_back)
{
    const char *path = tu_tmp_path("cmp.csv");
    const char *runs[3] = {"sgd lr=0.1, momentum 0.9", "adam \"fast\"", "two\nlines"};
    csvlog *log;
    cr_assert_eq(csvlog_open(path, 1, &log), 0);
    for (int step = 1; step <= 3; step++)
        for (int r = 0; r < 3; r++)
            cr_assert_eq(csvlog_batch(log, runs[r], 1, step, r + step * 0.5, 0.01, 100, step), 0);
    cr_assert_eq(csvlog_epoch(log, runs[1], 1, 3, 3.0, 1.0, 0.5, 0.75), 0);
    cr_assert_eq(csvlog_close(log), 0);

    char *text = tu_read_file(path, NULL);
    cr_assert(strncmp(text, "run,kind,epoch,step,", 20) == 0, "%s", text);
    cr_assert(strstr(text, "\n\"sgd lr=0.1, momentum 0.9\",batch,1,1,") != NULL, "%s", text);
    cr_assert(strstr(text, "\n\"adam \"\"fast\"\"\",epoch,1,3,,,,3,1,0.5,0.75\n") != NULL, "%s",
              text);
    free(text);

    csvlog_data d;
    char err[256];
    cr_assert_eq(csvlog_read(path, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.nruns, 3);
    for (int r = 0; r < 3; r++)
        cr_assert_str_eq(d.runs[r], runs[r]);
    cr_assert_eq(d.nrows, 10);
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(d.rows[i].run, (size_t)(i % 3));
        cr_assert_eq(d.rows[i].step, i / 3 + 1);
        cr_assert_eq(d.rows[i].loss, i % 3 + (i / 3 + 1) * 0.5);
    }
    cr_assert_eq(d.rows[9].run, 1);
    cr_assert_eq(d.rows[9].test_accuracy, 0.75);
    csvlog_data_free(&d);
}

Test(csvlog, reader_takes_columns_by_name)
{
    const char *path = tu_tmp_path("reordered.csv");
    FILE *f = fopen(path, "w");
    fputs("step,kind,loss,extra,epoch\r\n10,batch,0.5,x,1\r\n\r\n20,epoch,,y,1\r\n", f);
    fclose(f);
    csvlog_data d;
    char err[256];
    cr_assert_eq(csvlog_read(path, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.nrows, 2);
    cr_assert_eq(d.rows[0].step, 10);
    cr_assert_eq(d.rows[0].loss, 0.5);
    cr_assert_eq(d.rows[1].kind, CSVLOG_EPOCH);
    cr_assert(isnan(d.rows[1].loss) && isnan(d.rows[1].lr));
    csvlog_data_free(&d);
}

static void read_fails(const char *content, const char *expect_in_msg)
{
    const char *path = tu_tmp_path("bad.csv");
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    csvlog_data d;
    char err[256] = "";
    cr_assert_eq(csvlog_read(path, &d, err, sizeof err), -1, "accepted: %s", content);
    cr_assert(strstr(err, path) != NULL, "message without the file: %s", err);
    cr_assert(strstr(err, expect_in_msg) != NULL, "message '%s' lacks '%s'", err, expect_in_msg);
    cr_assert_eq(d.nrows, 0);
    cr_assert_null(d.rows);
}

Test(csvlog, reader_rejects_malformed_files_with_line_numbers)
{
    read_fails("", "empty");
    read_fails("epoch,step,loss\n1,2,3\n", "no 'kind'");
    read_fails("kind,epoch,step,loss\nbatch,1,2,0.5\nbatch,1,3\n", ":3: 3 fields");
    read_fails("kind,epoch,step,loss\nbatch,1,2,abc\n", ":2: loss: 'abc'");
    read_fails("kind,epoch,step,loss\nbatch,-1,2,0.5\n", "epoch");
    read_fails("kind,epoch,step,loss\nbatsh,1,2,0.5\n", "kind 'batsh'");
    read_fails("run,kind,epoch,step,loss\n\"open,batch,1,2,0.5\n", "not closed");
    read_fails("run,kind,epoch,step,loss\n\"a\"b,batch,1,2,0.5\n", "after a closing quote");
    csvlog_data d;
    char err[256];
    cr_assert_eq(csvlog_read(tu_tmp_path("missing.csv"), &d, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot read") != NULL, "%s", err);
}

Test(csvlog, open_reports_errors)
{
    csvlog *log = (csvlog *)1;
    cr_assert_eq(csvlog_open("/nonexistent-dir/x.csv", 0, &log), -1);
    cr_assert_null(log);
    cr_assert_eq(csvlog_close(NULL), 0);
}

/* ================================ SVG ================================ */

/* A minimal XML 1.0 well-formedness check: valid UTF-8, one root element, balanced and
 * matching tags, quoted attributes without '<', only the five predefined or numeric
 * entities, no text outside the root. Returns NULL or what is wrong. */
static const char *xml_problem(const char *s)
{
    static char why[160];
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i];) {
        int len = u[i] < 0x80         ? 1
                  : (u[i] >> 5) == 6  ? 2
                  : (u[i] >> 4) == 14 ? 3
                  : (u[i] >> 3) == 30 ? 4
                                      : 0;
        if (!len || (u[i] < 0x20 && !strchr("\t\r\n", u[i])))
            return "invalid UTF-8 or control character";
        for (int k = 1; k < len; k++)
            if ((u[i + k] & 0xc0) != 0x80)
                return "invalid UTF-8 continuation";
        i += (size_t)len;
    }
    char stack[64][64];
    int depth = 0, roots = 0;
    const char *p = s;
    if (strncmp(p, "<?xml", 5) == 0) {
        p = strstr(p, "?>");
        if (!p)
            return "unterminated declaration";
        p += 2;
    }
    while (*p) {
        if (*p != '<') {
            if (*p == '&') {
                const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"};
                int ok = 0;
                for (int k = 0; k < 6; k++)
                    ok |= strncmp(p, ents[k], strlen(ents[k])) == 0;
                if (!ok)
                    return "bad entity in text";
            }
            if (depth == 0 && !strchr(" \t\r\n", *p))
                return "text outside the root element";
            p++;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            p = strstr(p, "-->");
            if (!p)
                return "unterminated comment";
            p += 3;
            continue;
        }
        int closing = p[1] == '/';
        p += closing ? 2 : 1;
        char name[64];
        size_t n = 0;
        while (*p &&
               (strchr("-_:.", *p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9')) &&
               n < 63)
            name[n++] = *p++;
        name[n] = '\0';
        if (!n)
            return "tag without a name";
        if (closing) {
            while (*p == ' ')
                p++;
            if (*p != '>')
                return "junk in a closing tag";
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(why, sizeof why, "</%s> does not match <%s>", name,
                         depth ? stack[depth - 1] : "(none)");
                return why;
            }
            depth--;
            p++;
            continue;
        }
        for (;;) {
            while (*p && strchr(" \t\r\n", *p))
                p++;
            if (p[0] == '/' && p[1] == '>') {
                p += 2;
                roots += depth == 0;
                break;
            }
            if (*p == '>') {
                p++;
                roots += depth == 0;
                if (depth == 64)
                    return "too deep";
                strcpy(stack[depth++], name);
                break;
            }
            const char *a = p;
            while (*p && *p != '=' && *p != '>' && *p != ' ')
                p++;
            if (p == a || *p != '=' || (p[1] != '"' && p[1] != '\''))
                return "attribute without a quoted value";
            char q = p[1];
            p += 2;
            while (*p && *p != q) {
                if (*p == '<')
                    return "'<' in an attribute value";
                if (*p == '&' && strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) &&
                    strncmp(p, "&gt;", 4) && strncmp(p, "&quot;", 6) && strncmp(p, "&#", 2))
                    return "bad entity in an attribute";
                p++;
            }
            if (!*p)
                return "unterminated attribute value";
            p++;
        }
    }
    if (depth)
        return "unclosed element";
    if (roots != 1)
        return "not exactly one root element";
    return NULL;
}

/* Checks the document with the checker above and, when installed, with xmllint. */
static void assert_wellformed(const char *svg)
{
    cr_assert_not_null(svg);
    const char *why = xml_problem(svg);
    cr_assert_null(why, "not well-formed: %s", why);
    if (system("xmllint --version >/dev/null 2>&1") == 0) {
        const char *path = tu_tmp_path("check.svg");
        cr_assert_eq(plot_save(path, svg), 0);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        cr_assert_eq(system(cmd), 0, "xmllint rejects the SVG");
    }
}

/* Every point of every <polyline class="cls">: fills xs/ys up to cap, returns the count
 * and the number of polylines. */
static size_t polyline_points(const char *svg, const char *cls, double *xs, double *ys, size_t cap,
                              size_t *lines)
{
    char key[64];
    snprintf(key, sizeof key, "<polyline class=\"%s\"", cls);
    size_t n = 0;
    *lines = 0;
    for (const char *p = strstr(svg, key); p; p = strstr(p + 1, key)) {
        (*lines)++;
        const char *q = strstr(p, "points=\"") + 8;
        while (*q != '"') {
            char *end;
            double x = strtod(q, &end);
            cr_assert(*end == ',', "bad point list");
            double y = strtod(end + 1, &end);
            if (n < cap) {
                xs[n] = x;
                ys[n] = y;
            }
            n++;
            q = end;
            while (*q == ' ')
                q++;
        }
    }
    return n;
}

/* The texts (and their y) of <text> elements inside <g class="group">. */
static size_t group_labels(const char *svg, const char *group, char labels[][32], double *ys,
                           size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "<g class=\"%s\">", group);
    const char *p = strstr(svg, key);
    cr_assert_not_null(p, "no group %s", group);
    const char *end = strstr(p, "</g>");
    size_t n = 0;
    for (const char *t = strstr(p, "<text"); t && t < end; t = strstr(t + 1, "<text")) {
        const char *yat = strstr(t, " y=\"");
        const char *gt = strchr(t, '>');
        const char *close = strstr(gt, "</text>");
        if (n < cap) {
            ys[n] = strtod(yat + 4, NULL);
            size_t len = (size_t)(close - gt - 1);
            len = len < 31 ? len : 31;
            memcpy(labels[n], gt + 1, len);
            labels[n][len] = '\0';
        }
        n++;
    }
    return n;
}

static void assert_labels(const char *svg, const char *group, const char *const *want, size_t n)
{
    char got[64][32];
    double ys[64];
    size_t k = group_labels(svg, group, got, ys, 64);
    cr_assert_eq(k, n, "%s: %zu labels, expected %zu (first '%s')", group, k, n, k ? got[0] : "");
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(got[i], want[i], "%s label %zu", group, i);
}

Test(svg, nice_ticks_for_known_ranges)
{
    double t[32], step;
    size_t n = plot_nice_ticks(0, 1000, 6, t, 32, &step);
    cr_assert_eq(n, 6);
    cr_assert_eq(step, 200);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(t[i], 200.0 * (double)i);

    n = plot_nice_ticks(0, 2.3, 6, t, 32, &step);
    cr_assert_eq(step, 0.5);
    cr_assert_eq(n, 5);
    cr_assert_eq(t[4], 2.0);

    /* 0.99 / 0.01 is 98.999..., the step 0.01 must still count 7 ticks and be refused */
    n = plot_nice_ticks(0.93, 0.99, 5, t, 32, &step);
    cr_assert_eq(step, 0.02);
    cr_assert_eq(n, 3);
    cr_assert_float_eq(t[0], 0.94, 1e-12);
    cr_assert_float_eq(t[2], 0.98, 1e-12);

    n = plot_nice_ticks(-3, 7, 5, t, 32, &step);
    cr_assert_eq(step, 2);
    cr_assert_eq(n, 5);
    cr_assert_eq(t[0], -2);
    cr_assert_eq(t[1], 0);

    n = plot_nice_ticks(0, 2e7, 5, t, 32, &step);
    cr_assert_eq(step, 5e6);
    cr_assert_eq(n, 5);
}

Test(svg, nice_ticks_sweep_follows_the_1_2_5_rule)
{
    uint64_t seed = 7;
    for (int it = 0; it < 20000; it++) {
        double mag = pow(10, (double)(mix(&seed) % 20) - 8);
        double lo = ((double)(mix(&seed) % 20001) / 10000.0 - 1) * mag * 10;
        double hi = lo + mag * (0.01 + (double)(mix(&seed) % 10000) / 1000.0);
        int target = 4 + (int)(mix(&seed) % 7);
        double t[64], step;
        size_t n = plot_nice_ticks(lo, hi, target, t, 64, &step);
        cr_assert(n >= 2 && n <= (size_t)target + 1, "[%g, %g] target %d: %zu ticks", lo, hi,
                  target, n);
        double m = step / pow(10, floor(log10(step) + 1e-12));
        cr_assert(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9,
                  "step %g is not 1, 2 or 5 times a power of ten", step);
        for (size_t i = 0; i < n; i++) {
            cr_assert(t[i] >= lo - 1e-9 * step && t[i] <= hi + 1e-9 * step);
            cr_assert(fabs(t[i] / step - round(t[i] / step)) < 1e-6);
            if (i)
                cr_assert(fabs(t[i] - t[i - 1] - step) < 1e-9 * fmax(step, fabs(t[i])));
        }
    }
}

Test(svg, tick_labels)
{
    struct {
        double v, step;
        const char *want;
    } cases[] = {
        {0.5, 0.1, "0.5"},         {2, 0.5, "2.0"},      {0, 0.5, "0"},
        {1e-17, 0.5, "0"},         {-1.5, 0.5, "-1.5"},  {1000, 200, "1000"},
        {25000, 5000, "25k"},      {5000, 5000, "5k"},   {1500000, 500000, "1.5M"},
        {2e7, 5e6, "20M"},         {0.94, 0.02, "0.94"}, {0.30000000000000004, 0.1, "0.3"},
        {0.001, 0.0005, "0.0010"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plot_format_tick(buf, sizeof buf, cases[i].v, cases[i].step);
        cr_assert_str_eq(buf, cases[i].want, "%g at step %g", cases[i].v, cases[i].step);
    }
}

Test(svg, ema_is_the_debiased_moving_average)
{
    enum { N = 50 };
    double y[N], out[N];
    uint64_t seed = 3;
    for (int i = 0; i < N; i++)
        y[i] = (double)(mix(&seed) % 1000) / 100.0;
    y[7] = NAN;
    y[20] = INFINITY;
    const double w = 0.8;
    plot_ema(y, N, w, out);
    /* reference: the closed form sum_j w^(k-j) (1-w) y_j / (1 - w^k) over the finite
     * values, evaluated directly; agreement to 1e-12 relative (double rounding only) */
    double xs[N];
    int k = 0;
    for (int i = 0; i < N; i++) {
        if (!isfinite(y[i])) {
            cr_assert(isnan(out[i]), "non-finite input %d must give NaN", i);
            continue;
        }
        xs[k++] = y[i];
        double sum = 0;
        for (int j = 0; j < k; j++)
            sum += pow(w, k - 1 - j) * (1 - w) * xs[j];
        double ref = sum / (1 - pow(w, k));
        cr_assert(fabs(out[i] - ref) <= 1e-12 * fabs(ref), "%d: %.17g vs %.17g", i, out[i], ref);
    }
    cr_assert_eq(out[0], y[0], "the first smoothed value is the first value");
}

/* A run of 37 batches (steps 1..37) with NaN at 10..12, three epochs. */
#define RUN_N 37
static double run_step[RUN_N], run_loss[RUN_N];
static const double run_epoch_step[3] = {12, 24, 36};
static const double run_acc[3] = {0.9, NAN, 0.95};

static plot_series small_run(void)
{
    for (int i = 0; i < RUN_N; i++) {
        run_step[i] = i + 1;
        run_loss[i] = 0.1 + 2.2 * exp(-i / 10.0);
    }
    run_loss[9] = run_loss[10] = NAN;
    run_loss[11] = -INFINITY;
    return (plot_series){NULL, run_step, run_loss, RUN_N, run_epoch_step, run_acc, 3};
}

Test(svg, loss_plot_points_ticks_and_markers)
{
    plot_series s = small_run();
    plot_options o = {"lenet on mnist", "sgd lr 0.1", 0, 0, 0, 0};
    char *svg = plot_loss_svg(&s, 1, &o);
    assert_wellformed(svg);
    double xs[64], ys[64];
    size_t lines;
    /* 37 batches minus the three non-finite ones, split in two lines at the gap */
    cr_assert_eq(polyline_points(svg, "raw", xs, ys, 64, &lines), 34);
    cr_assert_eq(lines, 2);
    cr_assert_eq(polyline_points(svg, "smooth", xs, ys, 64, &lines), 34);
    cr_assert_eq(lines, 2);
    for (int i = 1; i < 34; i++)
        cr_assert(xs[i] > xs[i - 1], "x must grow with the step");
    /* test accuracy: NaN in epoch 2 breaks the line into two single points */
    cr_assert_eq(count_of(svg, "<circle class=\"acc\""), 2);
    cr_assert_eq(count_of(svg, "<line class=\"epoch\""), 3);
    cr_assert(strstr(svg, ">95.00%</text>") != NULL, "the last accuracy is written out");

    /* losses 0.1..2.3 -> ticks every 0.5 over [0, 2.5]; steps 0..37 -> every 5;
     * accuracy 90..95 % -> every 1 % */
    const char *y[] = {"0", "0.5", "1.0", "1.5", "2.0", "2.5"};
    assert_labels(svg, "yticks", y, 6);
    const char *x[] = {"0", "5", "10", "15", "20", "25", "30", "35"};
    assert_labels(svg, "xticks", x, 8);
    const char *a[] = {"90", "91", "92", "93", "94", "95"};
    assert_labels(svg, "aticks", a, 6);
    cr_assert(strstr(svg, ">epoch 1</text>") && strstr(svg, ">epoch 3</text>"));
    cr_assert(strstr(svg, ">sgd lr 0.1</text>"));
    free(svg);
}

Test(svg, text_is_escaped)
{
    plot_series s = small_run();
    plot_options o = {"a<b & \"c\" 'd'> \x01\xff caf\xc3\xa9", "x & y", 0, 0, 0, 0};
    char *svg = plot_loss_svg(&s, 1, &o);
    assert_wellformed(svg);
    cr_assert(strstr(svg, ">a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt; ?? caf\xc3\xa9</text>"),
              "title not escaped as expected");
    cr_assert(strstr(svg, "<title>a&lt;b &amp;"));
    cr_assert(strstr(svg, ">x &amp; y</text>"));
    free(svg);
}

Test(svg, degenerate_inputs_stay_wellformed)
{
    double st[3] = {1, 2, 3}, nan3[3] = {NAN, NAN, INFINITY}, flat[3] = {0.25, 0.25, 0.25};
    double one_s = 5, one_l = 0.7, zero[3] = {0, 0, 0};
    char *svg;
    double xs[8], ys[8];
    size_t lines;

    /* nothing finite: a note, no lines */
    plot_series s = {NULL, st, nan3, 3, NULL, NULL, 0};
    svg = plot_loss_svg(&s, 1, NULL);
    assert_wellformed(svg);
    cr_assert(strstr(svg, "no finite loss values"));
    cr_assert_eq(polyline_points(svg, "raw", xs, ys, 8, &lines), 0);
    free(svg);

    /* one point: marked with a circle */
    s = (plot_series){NULL, &one_s, &one_l, 1, NULL, NULL, 0};
    svg = plot_loss_svg(&s, 1, NULL);
    assert_wellformed(svg);
    cr_assert_eq(count_of(svg, "<circle class=\"single\""), 1);
    free(svg);

    /* constant loss, and constant zero: a non-empty y range with distinct labels */
    double *flats[2] = {flat, zero};
    for (int k = 0; k < 2; k++) {
        s = (plot_series){NULL, st, flats[k], 3, NULL, NULL, 0};
        svg = plot_loss_svg(&s, 1, NULL);
        assert_wellformed(svg);
        char got[64][32];
        double yy[64];
        size_t n = group_labels(svg, "yticks", got, yy, 64);
        cr_assert(n >= 3, "constant loss: %zu y ticks", n);
        cr_assert_str_neq(got[0], got[n - 1]);
        cr_assert_eq(polyline_points(svg, "raw", xs, ys, 8, &lines), 3);
        cr_assert(ys[0] == ys[2]);
        free(svg);
    }

    /* no series at all */
    svg = plot_loss_svg(NULL, 0, NULL);
    assert_wellformed(svg);
    free(svg);
}

Test(svg, log_axis_ticks_at_decades)
{
    plot_series s = small_run();
    run_loss[0] = 30; /* 0.1 .. 30: three decades */
    run_loss[30] = 0; /* not drawable on a log axis: skipped */
    plot_options o = {NULL, NULL, 0, 0, 0, 1};
    char *svg = plot_loss_svg(&s, 1, &o);
    assert_wellformed(svg);
    const char *y[] = {"0.1", "1", "10", "100"};
    assert_labels(svg, "yticks", y, 4);
    double xs[64], ys[64];
    size_t lines;
    cr_assert_eq(polyline_points(svg, "raw", xs, ys, 64, &lines), 33);
    cr_assert_eq(lines, 3);
    cr_assert(strstr(svg, "loss (log scale)"));
    free(svg);
}

Test(svg, long_runs_are_thinned_but_keep_their_extremes)
{
    enum { N = 1000000 };
    double *st = malloc(N * sizeof *st), *lo = malloc(N * sizeof *lo);
    cr_assert(st && lo);
    uint64_t seed = 11;
    for (int i = 0; i < N; i++) {
        st[i] = (double)i * 10;
        lo[i] = 1 + (double)(mix(&seed) % 1000) / 2000.0;
    }
    lo[654321] = 10; /* one spike: the y axis tops out at 10 */
    plot_series s = {NULL, st, lo, N, NULL, NULL, 0};
    plot_options o = {NULL, NULL, 800, 400, 0, 0};
    char *svg = plot_loss_svg(&s, 1, &o);
    assert_wellformed(svg);
    /* at most two points (min and max) per pixel column of an 800-pixel-wide plot */
    static double xs[4000], ys[4000];
    size_t lines;
    size_t n = polyline_points(svg, "raw", xs, ys, 4000, &lines);
    cr_assert(n > 100 && n <= 1600, "%zu raw points", n);
    cr_assert(strlen(svg) < 200000, "%zu bytes", strlen(svg));
    /* the spike survives: the highest raw point sits on the "10" tick (label y = tick + 4;
     * coordinates are printed to 0.1 px) */
    char got[64][32];
    double ty[64];
    size_t nt = group_labels(svg, "yticks", got, ty, 64);
    cr_assert_str_eq(got[nt - 1], "10");
    double top = ys[0];
    for (size_t i = 1; i < n; i++)
        top = fmin(top, ys[i]);
    cr_assert(fabs(top - (ty[nt - 1] - 4)) <= 0.11, "spike at %g, tick at %g", top, ty[nt - 1] - 4);
    /* steps 0 .. 9,999,990 */
    const char *x[] = {"0", "2M", "4M", "6M", "8M"};
    assert_labels(svg, "xticks", x, 5);
    free(svg);
    free(st);
    free(lo);
}

Test(svg, compare_plot_has_one_colour_per_run)
{
    plot_series base = small_run();
    plot_series s[3] = {base, base, base};
    s[0].name = "sgd";
    s[1].name = "adam <fast>";
    s[2].name = "rmsprop";
    char *svg = plot_loss_svg(s, 3, NULL);
    assert_wellformed(svg);
    double xs[128], ys[128];
    size_t lines;
    cr_assert_eq(polyline_points(svg, "smooth", xs, ys, 128, &lines), 3 * 34);
    /* the final accuracy goes into each legend entry */
    cr_assert(strstr(svg, ">sgd (95.00%)</text>"));
    cr_assert(strstr(svg, ">adam &lt;fast&gt; (95.00%)</text>"));
    const char *colours[3] = {"#0072B2", "#D55E00", "#009E73"};
    for (int i = 0; i < 3; i++) {
        char key[96];
        snprintf(key, sizeof key, "<polyline class=\"smooth\" stroke=\"%s\"", colours[i]);
        cr_assert_eq(count_of(svg, key), 2, "run %d drawn in %s", i, colours[i]);
    }
    free(svg);
}

Test(svg, plot_from_a_csv_log)
{
    const char *path = tu_tmp_path("run.csv");
    csvlog *log;
    cr_assert_eq(csvlog_open(path, 0, &log), 0);
    for (int e = 1; e <= 4; e++) {
        for (int b = 1; b <= 25; b++)
            csvlog_batch(log, NULL, e, (e - 1) * 25 + b, 2.0 / (e * b), 0.1, 1000, e * b);
        csvlog_epoch(log, NULL, e, e * 25, e * 10.0, 1.0 / e, 1.1 / e, 0.5 + e * 0.1);
    }
    cr_assert_eq(csvlog_close(log), 0);
    csvlog_data d;
    char err[256];
    cr_assert_eq(csvlog_read(path, &d, err, sizeof err), 0, "%s", err);
    char *svg = plot_log_svg(&d, NULL);
    assert_wellformed(svg);
    double xs[128], ys[128];
    size_t lines;
    cr_assert_eq(polyline_points(svg, "raw", xs, ys, 128, &lines), 100);
    cr_assert_eq(count_of(svg, "<circle class=\"acc\""), 4);
    cr_assert_eq(count_of(svg, "<line class=\"epoch\""), 4);
    cr_assert(strstr(svg, ">90.00%</text>"));
    free(svg);
    csvlog_data_free(&d);
}

Test(svg, confusion_matrix)
{
    const char *names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                             "dog",      "frog",       "horse", "ship", "t&ruck"};
    long long c[100];
    long long total = 0, diag = 0;
    for (int t = 0; t < 10; t++)
        for (int p = 0; p < 10; p++) {
            c[t * 10 + p] = t == p ? 900 + t : (t + 2 * p) % 7;
            total += c[t * 10 + p];
            diag += t == p ? c[t * 10 + p] : 0;
        }
    char *svg = plot_confusion_svg(c, 10, names, "eval <cifar10>");
    assert_wellformed(svg);
    cr_assert_eq(count_of(svg, "<rect x="), 100 + 2, "100 cells, the frame and the colour scale");
    cr_assert(strstr(svg, ">t&amp;ruck</text>"));
    cr_assert(strstr(svg, "eval &lt;cifar10&gt;"));
    char want[96];
    snprintf(want, sizeof want, ">accuracy %.2f%% (%lld of %lld)</text>",
             100.0 * (double)diag / (double)total, diag, total);
    cr_assert(strstr(svg, want), "missing '%s'", want);
    /* the cell for true cat, predicted dog, with its count and tooltip */
    snprintf(want, sizeof want, "<title>true cat, predicted dog: %lld (", c[3 * 10 + 5]);
    cr_assert(strstr(svg, want), "missing '%s'", want);
    /* recall of class 0: 900 / row sum */
    long long row0 = 0;
    for (int p = 0; p < 10; p++)
        row0 += c[p];
    snprintf(want, sizeof want, "class=\"recall\">%.1f%%</text>", 100.0 * 900 / (double)row0);
    cr_assert(strstr(svg, want), "missing '%s'", want);
    free(svg);

    /* unnamed classes and an all-zero matrix */
    long long z[9] = {0};
    svg = plot_confusion_svg(z, 3, NULL, NULL);
    assert_wellformed(svg);
    cr_assert(strstr(svg, ">no images counted</text>"));
    cr_assert(strstr(svg, ">2</text>"));
    free(svg);
}

Test(svg, save_replaces_the_file)
{
    const char *path = tu_tmp_path("out.svg");
    cr_assert_eq(plot_save(path, "<svg/>"), 0);
    cr_assert_eq(plot_save(path, "<svg></svg>\n"), 0);
    char *text = tu_read_file(path, NULL);
    cr_assert_str_eq(text, "<svg></svg>\n");
    free(text);
    cr_assert_eq(plot_save("/nonexistent-dir/x.svg", "<svg/>"), -1);
}

/* ============================= TensorBoard ============================= */

/* Bitwise CRC-32C, the textbook definition, independent of the tool's table. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
    }
    return ~c;
}

static uint32_t mask_ref(uint32_t c)
{
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

Test(tboard, crc32c_known_vectors)
{
    cr_assert_eq(tboard_crc32c(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(tboard_crc32c(0, "", 0), 0);
    /* RFC 3720, appendix B.4 */
    uint8_t b[32];
    memset(b, 0, 32);
    cr_assert_eq(tboard_crc32c(0, b, 32), 0x8a9136aau);
    memset(b, 0xff, 32);
    cr_assert_eq(tboard_crc32c(0, b, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    cr_assert_eq(tboard_crc32c(0, b, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    cr_assert_eq(tboard_crc32c(0, b, 32), 0x113fdb5cu);
    /* continuing a CRC equals one pass; random buffers agree with the bitwise one */
    uint8_t r[1000];
    uint64_t seed = 5;
    for (size_t i = 0; i < sizeof r; i++)
        r[i] = (uint8_t)mix(&seed);
    for (size_t n = 0; n <= sizeof r; n += 37) {
        cr_assert_eq(tboard_crc32c(0, r, n), crc32c_ref(r, n), "n = %zu", n);
        cr_assert_eq(tboard_crc32c(tboard_crc32c(0, r, n / 3), r + n / 3, n - n / 3),
                     crc32c_ref(r, n));
        cr_assert_eq(tboard_masked_crc32c(r, n), mask_ref(crc32c_ref(r, n)));
    }
}

/* ---- an independent protobuf + TFRecord reader ---- */

typedef struct event {
    double wall_time;
    long long step;
    char file_version[64];
    char tag[512];
    float value;
    int has_value;
} event;

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        cr_assert(*p < end, "varint runs past the end");
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    cr_assert_fail("varint longer than 10 bytes");
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void decode_value(const uint8_t *p, const uint8_t *end, event *ev)
{
    while (p < end) {
        uint64_t key = rd_varint(&p, end);
        if (key == (1 << 3 | 2)) {
            uint64_t n = rd_varint(&p, end);
            cr_assert(n < sizeof ev->tag && p + n <= end);
            memcpy(ev->tag, p, n);
            ev->tag[n] = '\0';
            p += n;
        } else if (key == (2 << 3 | 5)) {
            cr_assert(p + 4 <= end);
            uint32_t bits = (uint32_t)rd_le(p, 4);
            memcpy(&ev->value, &bits, 4);
            ev->has_value = 1;
            p += 4;
        } else {
            cr_assert_fail("unexpected Value field key %llu", (unsigned long long)key);
        }
    }
}

static void decode_event(const uint8_t *p, size_t n, event *ev)
{
    const uint8_t *end = p + n;
    memset(ev, 0, sizeof *ev);
    while (p < end) {
        uint64_t key = rd_varint(&p, end);
        switch (key) {
        case 1 << 3 | 1: {
            cr_assert(p + 8 <= end);
            uint64_t bits = rd_le(p, 8);
            memcpy(&ev->wall_time, &bits, 8);
            p += 8;
            break;
        }
        case 2 << 3 | 0:
            ev->step = (long long)rd_varint(&p, end);
            break;
        case 3 << 3 | 2: {
            uint64_t len = rd_varint(&p, end);
            cr_assert(len < sizeof ev->file_version && p + len <= end);
            memcpy(ev->file_version, p, len);
            p += len;
            break;
        }
        case 5 << 3 | 2: { /* Summary */
            uint64_t len = rd_varint(&p, end);
            const uint8_t *send = p + len;
            cr_assert(send <= end);
            while (p < send) {
                cr_assert_eq(rd_varint(&p, send), 1 << 3 | 2, "Summary holds only values");
                uint64_t vlen = rd_varint(&p, send);
                cr_assert(p + vlen <= send);
                decode_value(p, p + vlen, ev);
                p += vlen;
            }
            break;
        }
        default:
            cr_assert_fail("unexpected Event field key %llu", (unsigned long long)key);
        }
    }
}

/* Reads every record of a TFRecord file, checking both CRCs. */
static size_t read_records(const char *path, event *evs, size_t cap)
{
    size_t len;
    uint8_t *buf = (uint8_t *)tu_read_file(path, &len);
    size_t pos = 0, n = 0;
    while (pos < len) {
        cr_assert(pos + 12 <= len, "truncated header at %zu", pos);
        uint64_t dlen = rd_le(buf + pos, 8);
        cr_assert_eq((uint32_t)rd_le(buf + pos + 8, 4), mask_ref(crc32c_ref(buf + pos, 8)),
                     "length CRC of record %zu", n);
        cr_assert(pos + 12 + dlen + 4 <= len, "truncated record %zu", n);
        cr_assert_eq((uint32_t)rd_le(buf + pos + 12 + dlen, 4),
                     mask_ref(crc32c_ref(buf + pos + 12, dlen)), "data CRC of record %zu", n);
        cr_assert(n < cap);
        decode_event(buf + pos + 12, dlen, &evs[n++]);
        pos += 12 + dlen + 4;
    }
    free(buf);
    return n;
}

static const char *only_file(const char *dir)
{
    static char path[1024];
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "events.out.tfevents.", 20) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            found++;
        }
    closedir(d);
    cr_assert_eq(found, 1, "%d event files in %s", found, dir);
    return path;
}

Test(tboard, event_file_records_decode)
{
    tboard *tb;
    cr_assert_eq(tboard_open(tu_tmpdir(), &tb), 0);
    char host[256] = "";
    gethostname(host, sizeof host);
    cr_assert(strstr(tboard_path(tb), "/events.out.tfevents.") != NULL);
    cr_assert(strstr(tboard_path(tb), host) != NULL, "%s lacks the host name", tboard_path(tb));
    cr_assert_eq(tboard_scalar(tb, "train/loss", 1, 2.5, 1700000000.25), 0);
    cr_assert_eq(tboard_scalar(tb, "train/loss", 300, 0.1, 1700000001.5), 0);
    cr_assert_eq(tboard_scalar(tb, "test/accuracy", 469, 0.9875, -1), 0);
    cr_assert_eq(tboard_scalar(tb, "lr", 0, -0.0, 1700000002), 0);
    cr_assert_eq(tboard_close(tb), 0);

    event ev[8];
    size_t n = read_records(only_file(tu_tmpdir()), ev, 8);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(ev[0].file_version, "brain.Event:2");
    cr_assert(ev[0].wall_time > 1.6e9, "wall time %f", ev[0].wall_time);
    cr_assert(!ev[0].has_value);
    /* values are stored as float32: compare to the float rounding, exactly */
    struct {
        const char *tag;
        long long step;
        float value;
        double wall;
    } want[4] = {{"train/loss", 1, 2.5f, 1700000000.25},
                 {"train/loss", 300, 0.1f, 1700000001.5},
                 {"test/accuracy", 469, 0.9875f, -1},
                 {"lr", 0, -0.0f, 1700000002}};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(ev[i + 1].tag, want[i].tag);
        cr_assert_eq(ev[i + 1].step, want[i].step);
        cr_assert(ev[i + 1].has_value);
        cr_assert(memcmp(&ev[i + 1].value, &want[i].value, 4) == 0, "value %d: %.9g", i,
                  (double)ev[i + 1].value);
        if (want[i].wall > 0)
            cr_assert_eq(ev[i + 1].wall_time, want[i].wall);
        else
            cr_assert(fabs(ev[i + 1].wall_time - ev[0].wall_time) < 60, "'now' is now");
    }
}

Test(tboard, encoding_edge_cases)
{
    uint8_t buf[1024], rec[1100];
    char tag[301];
    memset(tag, 'a', 300);
    tag[300] = '\0';
    /* a negative step is a ten-byte varint; a 300-byte tag needs a two-byte length */
    size_t n = tboard_encode_event(buf, sizeof buf, 1.0, -1, NULL, tag, 3.0f);
    cr_assert(n > 0);
    event ev;
    decode_event(buf, n, &ev);
    cr_assert_eq(ev.step, -1);
    cr_assert_str_eq(ev.tag, tag);
    cr_assert_eq(ev.value, 3.0f);
    cr_assert_eq(n, 9 + 11 + 1 + 2 + 1 + 2 + 1 + 2 + 300 + 5);
    cr_assert_eq(tboard_encode_event(buf, n - 1, 1.0, -1, NULL, tag, 3.0f), 0, "overflow");

    size_t r = tboard_frame_record(rec, sizeof rec, buf, n);
    cr_assert_eq(r, n + 16);
    cr_assert_eq(rd_le(rec, 8), n);
    cr_assert_eq((uint32_t)rd_le(rec + 8, 4), mask_ref(crc32c_ref(rec, 8)));
    cr_assert(memcmp(rec + 12, buf, n) == 0);
    cr_assert_eq((uint32_t)rd_le(rec + 12 + n, 4), mask_ref(crc32c_ref(buf, n)));
    cr_assert_eq(tboard_frame_record(rec, n + 15, buf, n), 0);

    /* an unwritable place fails cleanly */
    tboard *tb = (tboard *)1;
    cr_assert_eq(tboard_open("/proc/no/such/dir", &tb), -1);
    cr_assert_null(tb);
    cr_assert_eq(tboard_close(NULL), 0);
}

Test(tboard, two_writers_get_two_files)
{
    tboard *a, *b;
    cr_assert_eq(tboard_open(tu_tmpdir(), &a), 0);
    cr_assert_eq(tboard_open(tu_tmpdir(), &b), 0);
    cr_assert_str_neq(tboard_path(a), tboard_path(b));
    tboard_close(a);
    tboard_close(b);
}

/* TensorBoard's own loader, when the package is installed (python3 on PATH or the
 * system one); skipped otherwise. */
Test(tboard, tensorboard_reads_the_file)
{
    const char *src = getenv("CT_SOURCE_ROOT");
    if (!src)
        cr_skip_test("CT_SOURCE_ROOT is not set (run through meson test)");
    char sub[256];
    snprintf(sub, sizeof sub, "%s/run", tu_tmpdir());
    tboard *tb;
    cr_assert_eq(tboard_open(sub, &tb), 0);
    char spec[1024] = "";
    for (int i = 1; i <= 5; i++) {
        double loss = 2.0 / i, acc = 0.9 + i / 100.0;
        cr_assert_eq(tboard_scalar(tb, "train/loss", i * 10, loss, -1), 0);
        cr_assert_eq(tboard_scalar(tb, "test/accuracy", i * 10, acc, -1), 0);
        size_t len = strlen(spec);
        snprintf(spec + len, sizeof spec - len, " train/loss:%d:%.17g test/accuracy:%d:%.17g",
                 i * 10, loss, i * 10, acc);
    }
    cr_assert_eq(tboard_close(tb), 0);
    const char *pythons[2] = {"python3", "/usr/bin/python3"};
    for (int i = 0; i < 2; i++) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s '%s/tests/unit/check_tfevents.py' '%s'%s 2>&1", pythons[i],
                 src, sub, spec);
        int rc = system(cmd);
        int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (code == 0) {
            remove(only_file(sub));
            rmdir(sub);
            return;
        }
        cr_assert(code == 77 || code == 127, "%s: TensorBoard disagrees (exit %d)", pythons[i],
                  code);
    }
    remove(only_file(sub));
    rmdir(sub);
    cr_skip_test("the tensorboard Python package is not installed");
}

/* =============================== progress =============================== */

Test(progress, time_format)
{
    char b[32];
    struct {
        double s;
        const char *want;
    } cases[] = {{0, "0:00:00"},       {83, "0:01:23"}, {59.6, "0:01:00"}, {3600, "1:00:00"},
                 {100000, "27:46:40"}, {-1, "-:--:--"}, {NAN, "-:--:--"},  {INFINITY, "-:--:--"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        progress_format_time(b, sizeof b, cases[i].s);
        cr_assert_str_eq(b, cases[i].want, "%g s", cases[i].s);
    }
}

Test(progress, eta_from_the_mean_batch_time)
{
    progress_state s = {2, 10, 50, 100, 0.5, 1000, 150};
    /* 150 batches in 150 s, 850 to go */
    cr_assert_float_eq(progress_eta(&s), 850.0, 1e-9);
    s.step = 0;
    s.epoch = 1;
    cr_assert_eq(progress_eta(&s), -1, "unknown before the first batch");
    s = (progress_state){10, 10, 100, 100, 0.5, 1000, 150};
    cr_assert_eq(progress_eta(&s), 0);
}

Test(progress, status_line_plain)
{
    progress_state s = {2, 10, 50, 100, 0.23456, 1234.4, 150};
    progress_style st = {80, 0, 0};
    char b[256];
    size_t n = progress_format(b, sizeof b, &s, &st);
    /* 79 columns: the bar takes what the fields leave (19), half of it (9.5) rounds up */
    const char *want =
        "epoch 2/10 [##########---------]   50/100  loss 0.2346  1234 img/s  ETA 0:14:10";
    cr_assert_str_eq(b, want);
    cr_assert_eq(n, strlen(want));
    cr_assert_eq(n, 79);

    /* narrow: the bar goes, then the rate, and the line never exceeds width - 1 */
    st.width = 60;
    progress_format(b, sizeof b, &s, &st);
    cr_assert_str_eq(b, "epoch 2/10   50/100  loss 0.2346  1234 img/s  ETA 0:14:10");
    st.width = 50;
    progress_format(b, sizeof b, &s, &st);
    cr_assert_str_eq(b, "epoch 2/10   50/100  loss 0.2346  ETA 0:14:10");
    for (int w = 1; w < 120; w++) {
        st.width = w;
        progress_format(b, sizeof b, &s, &st);
        cr_assert(strlen(b) <= (size_t)(w > 1 ? w - 1 : 1) || w < 12, "width %d: %zu", w,
                  strlen(b));
    }

    /* a wide terminal caps the bar at 40 columns; unknown rate and loss */
    s = (progress_state){1, 3, 0, 469, NAN, 0, 0};
    st.width = 200;
    progress_format(b, sizeof b, &s, &st);
    cr_assert_str_eq(b, "epoch 1/3 [----------------------------------------]    0/469  loss -  "
                        "ETA -:--:--");
}

/* Columns of a line: code points outside ANSI escape sequences. */
static int visible_cols(const char *s)
{
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x1b) {
            while (*p && *p != 'm')
                p++;
            continue;
        }
        cols += (*p & 0xc0) != 0x80;
    }
    return cols;
}

Test(progress, status_line_colour_and_unicode)
{
    progress_state s = {1, 1, 123, 1000, 1.5, 50.25, 10};
    progress_style st = {100, 1, 1};
    char b[512];
    progress_format(b, sizeof b, &s, &st);
    cr_assert(strstr(b, "\033[") != NULL, "colour requested");
    cr_assert(strstr(b, "\u2588") != NULL, "block characters requested");
    cr_assert(strstr(b, "50.2 img/s") != NULL || strstr(b, "50.3 img/s") != NULL, "%s", b);
    cr_assert(visible_cols(b) <= 99, "%d columns", visible_cols(b));
    /* the fields take 58 of 99 columns, the bar 38: 12.3% of 38 is 4.674, so 4 full
     * blocks and 5 eighths (U+258B) */
    cr_assert(strstr(b, "\u2588\u2588\u2588\u2588\u258b\033") != NULL, "%s", b);
}

Test(progress, epoch_line)
{
    progress_epoch e = {3, 10, 0.23456, 0.21, 0.97854, 5123.4, 12.34, 40, 0.05};
    char b[256];
    progress_format_epoch(b, sizeof b, &e, 0, 0);
    cr_assert_str_eq(b, "epoch  3/10  train loss 0.2346  test loss 0.2100  test acc 97.85%  "
                        "5123 img/s  12.3 s  ETA 0:01:33");
    progress_format_epoch(b, sizeof b, &e, 1, 0);
    cr_assert_str_eq(b, "epoch  3/10  train loss 0.2346  test loss 0.2100  test acc 97.85%  "
                        "5123 img/s  12.3 s  lr 0.05  total 0:00:40  ETA 0:01:33");
    e = (progress_epoch){1, 1, 12345.0, NAN, NAN, 0, 1, 1, NAN};
    progress_format_epoch(b, sizeof b, &e, 1, 0);
    cr_assert_str_eq(b, "epoch 1/1  train loss 1.234e+04  1.0 s  total 0:00:01");
}

static char *captured(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    cr_assert(b);
    b[fread(b, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return b;
}

static void run_epochs(progress *p, int epochs, int steps, double dt)
{
    double t = 0;
    for (int e = 1; e <= epochs; e++) {
        for (int s = 1; s <= steps; s++) {
            t += dt;
            progress_state st = {e, epochs, s, steps, 1.0 / s, 100, t};
            progress_update(p, &st);
        }
        progress_epoch pe = {e, epochs, 0.5, 0.4, 0.9, 100, steps * dt, t, 0.1};
        progress_epoch_end(p, &pe);
    }
}

Test(progress, pipe_gets_whole_lines_only)
{
    FILE *f = tmpfile();
    progress_options o = {.tty = PROGRESS_OFF};
    progress *p = progress_create(f, &o);
    run_epochs(p, 3, 50, 0.5);
    progress_note(p, "saved %s", "model.ckpt");
    progress_free(p);
    char *out = captured(f);
    cr_assert(strchr(out, '\r') == NULL && strchr(out, '\033') == NULL, "%s", out);
    cr_assert_eq(count_of(out, "\n"), 4, "three epoch lines and the note:\n%s", out);
    cr_assert(strncmp(out, "epoch 1/3  train loss 0.5000", 28) == 0, "%s", out);
    cr_assert(strstr(out, "\nsaved model.ckpt\n"));
    free(out);

    /* verbose adds a batch line every line_s seconds of training: 75 s in steps of
     * 0.5 s with line_s 10 gives lines at 0.5, 10.5, ... */
    f = tmpfile();
    o = (progress_options){.level = PROGRESS_VERBOSE, .tty = PROGRESS_OFF, .line_s = 10};
    p = progress_create(f, &o);
    run_epochs(p, 3, 50, 0.5);
    progress_free(p);
    out = captured(f);
    cr_assert(strchr(out, '\r') == NULL);
    cr_assert_eq(count_of(out, " lr 0.1"), 3, "verbose epoch lines show the rate:\n%s", out);
    size_t batch_lines = count_of(out, "img/s  ETA");
    cr_assert(batch_lines >= 8 && batch_lines <= 10, "%zu batch lines:\n%s", batch_lines, out);
    free(out);

    /* quiet: nothing at all */
    f = tmpfile();
    o = (progress_options){.level = PROGRESS_QUIET, .tty = PROGRESS_ON};
    p = progress_create(f, &o);
    run_epochs(p, 2, 10, 0.5);
    progress_note(p, "hello");
    progress_free(p);
    out = captured(f);
    cr_assert_str_eq(out, "");
    free(out);
}

Test(progress, terminal_redraws_one_line)
{
    FILE *f = tmpfile();
    progress_options o = {.tty = PROGRESS_ON,
                          .color = PROGRESS_OFF,
                          .unicode = PROGRESS_OFF,
                          .width = 80,
                          .redraw_s = 1};
    progress *p = progress_create(f, &o);
    run_epochs(p, 2, 40, 0.1);
    progress_free(p);
    char *out = captured(f);
    /* redraws at most once per second of training (4 s per epoch) plus the first and
     * last batch of each epoch; each epoch line replaces the status line */
    size_t redraws = count_of(out, "\repoch ");
    cr_assert(redraws >= 8 && redraws <= 12, "%zu redraws", redraws);
    cr_assert_eq(count_of(out, "\n"), 2);
    cr_assert(strstr(out, "#]") != NULL && strstr(out, "-]") != NULL,
              "a full bar at the end of an epoch, a partial one before");
    /* the epoch line starts after blanking the status line */
    cr_assert(strstr(out, "\r                    ") != NULL);
    cr_assert(strstr(out, "\repoch 1/2  train loss") != NULL, "%s", out);
    free(out);
}

Test(progress, colour_follows_no_color_and_term)
{
    progress_state s = {1, 1, 1, 10, 1.0, 10, 1};
    const char *cases[3][2] = {{"1", "xterm"}, {NULL, "dumb"}, {NULL, "xterm"}};
    int want[3] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        if (cases[i][0])
            setenv("NO_COLOR", cases[i][0], 1);
        else
            unsetenv("NO_COLOR");
        setenv("TERM", cases[i][1], 1);
        FILE *f = tmpfile();
        progress_options o = {.tty = PROGRESS_ON, .width = 80};
        progress *p = progress_create(f, &o);
        progress_update(p, &s);
        progress_free(p);
        char *out = captured(f);
        cr_assert_eq(strchr(out, '\033') != NULL, want[i], "NO_COLOR=%s TERM=%s",
                     cases[i][0] ? cases[i][0] : "(unset)", cases[i][1]);
        free(out);
    }
    /* a file is not a terminal: no colour, no redraw, whatever the environment */
    unsetenv("NO_COLOR");
    FILE *f = tmpfile();
    progress *p = progress_create(f, NULL);
    progress_update(p, &s);
    progress_free(p);
    char *out = captured(f);
    cr_assert_str_eq(out, "");
    free(out);
}

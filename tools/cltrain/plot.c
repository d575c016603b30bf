/* plot — SVG loss curves and confusion matrices; what they show is described in plot.h.
 *
 * Everything is built in a growing string buffer and written in one go. Coordinates are
 * pixels with the origin at the top left; `ax` maps data to pixels for one axis. */
#include "plot.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"

/* Okabe & Ito (2008), "Color Universal Design": distinguishable with protanopia,
 * deuteranopia and tritanopia. Yellow is last: it is faint on white. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
enum { NPALETTE = sizeof palette / sizeof palette[0] };

/* ---- string buffer ---- */

typedef struct sb {
    char *p;
    size_t n, cap;
    int oom;
} sb;

static void sb_grow(sb *b, size_t more)
{
    if (b->oom || b->n + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_printf(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        sb_grow(b, (size_t)n);
        if (!b->oom) {
            vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap2);
            b->n += (size_t)n;
        }
    }
    va_end(ap2);
}

static void sb_putc(sb *b, char c)
{
    sb_grow(b, 1);
    if (!b->oom) {
        b->p[b->n++] = c;
        b->p[b->n] = '\0';
    }
}

/* Length in bytes of the valid UTF-8 sequence at p that is also a character XML 1.0
 * allows, or 0. */
static int utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    int len = c >= 0xc2 && c <= 0xdf   ? 2
              : c >= 0xe0 && c <= 0xef ? 3
              : c >= 0xf0 && c <= 0xf4 ? 4
                                       : 0;
    for (int i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) || /* overlong, surrogate */
        (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90) || /* overlong, > U+10FFFF */
        (c == 0xef && p[1] == 0xbf && p[2] >= 0xbe))                 /* U+FFFE, U+FFFF */
        return 0;
    return len;
}

/* Text content or attribute value, escaped. */
static void sb_text(sb *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            switch (c) {
            case '&':
                sb_printf(b, "&amp;");
                break;
            case '<':
                sb_printf(b, "&lt;");
                break;
            case '>':
                sb_printf(b, "&gt;");
                break;
            case '"':
                sb_printf(b, "&quot;");
                break;
            case '\'':
                sb_printf(b, "&#39;");
                break;
            default:
                sb_putc(b, c < 0x20 || c == 0x7f ? (c == '\t' ? ' ' : '?') : (char)c);
            }
            p++;
            continue;
        }
        int len = utf8_len(p);
        if (len == 0) {
            sb_putc(b, '?');
            p++;
            continue;
        }
        for (int i = 0; i < len; i++)
            sb_putc(b, (char)p[i]);
        p += len;
    }
}

/* Rough rendered width of a text in a proportional sans-serif font (0.6 em per
 * character is about DejaVu Sans's mean), enough to lay out legends and margins. */
static double text_w(const char *s, double font)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        chars += (*p & 0xc0) != 0x80;
    return 0.6 * font * (double)chars;
}

static void sb_label(sb *b, double x, double y, const char *anchor, double size, const char *fill,
                     const char *extra, const char *text)
{
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%g\" fill=\"%s\"%s%s>",
              x, y, anchor, size, fill, extra ? " " : "", extra ? extra : "");
    sb_text(b, text);
    sb_printf(b, "</text>\n");
}

/* ---- ticks and smoothing ---- */

/* The multiples of `step` in [lo, hi], with a little slack for rounding (0.99 / 0.01 is
 * 98.99999999999999). */
static void tick_span(double lo, double hi, double step, double *first, double *last)
{
    double eps = 1e-9 * step;
    *first = ceil((lo - eps) / step);
    *last = floor((hi + eps) / step);
}

static size_t ticks_with_step(double lo, double hi, double step, double *ticks, size_t cap)
{
    double eps = 1e-9 * step, first, last;
    tick_span(lo, hi, step, &first, &last);
    size_t n = 0;
    for (double i = first; i <= last; i++) {
        double t = i * step;
        if (fabs(t) < eps)
            t = 0;
        if (n < cap)
            ticks[n] = t;
        n++;
    }
    return n;
}

size_t plot_nice_ticks(double lo, double hi, int target, double *ticks, size_t cap, double *step)
{
    if (target < 1)
        target = 1;
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) {
        if (step)
            *step = 0;
        if (cap && isfinite(lo))
            ticks[0] = lo;
        return isfinite(lo) ? 1 : 0;
    }
    double raw = (hi - lo) / target;
    double mag = pow(10, floor(log10(raw)));
    static const double mult[] = {1, 2, 5, 10, 20, 50, 100};
    double s = mag;
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++) {
        double first, last;
        s = mult[i] * mag;
        tick_span(lo, hi, s, &first, &last);
        if (last - first + 1 <= target + 1)
            break;
    }
    if (step)
        *step = s;
    return ticks_with_step(lo, hi, s, ticks, cap);
}

void plot_format_tick(char *buf, size_t size, double v, double step)
{
    if (step > 0 && fabs(v) < 1e-9 * step)
        v = 0;
    if (!(step > 0) || step < 1e-6 || fabs(v) >= 1e15) {
        snprintf(buf, size, "%g", v);
        return;
    }
    /* the suffix follows the step, so one axis never mixes "5000" and "10k" */
    const char *suffix = "";
    double scale = 1;
    if (step >= 1e5) {
        suffix = "M";
        scale = 1e6;
    } else if (step >= 1e3) {
        suffix = "k";
        scale = 1e3;
    }
    if (v == 0) {
        snprintf(buf, size, "0");
        return;
    }
    double s = step / scale;
    int decimals = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
    /* a step like 2.5 never comes from the 1-2-5 rule, but a caller's might */
    if (decimals == 0 && fabs(s - round(s)) > 1e-9)
        decimals = 1;
    snprintf(buf, size, "%.*f%s", decimals, v / scale, suffix);
}

void plot_ema(const double *y, size_t n, double w, double *out)
{
    double m = 0, wk = 1; /* wk = w^k */
    for (size_t i = 0; i < n; i++) {
        double v = y[i];
        if (!isfinite(v)) {
            out[i] = NAN;
            continue;
        }
        m = w * m + (1 - w) * v;
        wk *= w;
        out[i] = wk < 1 ? m / (1 - wk) : v;
    }
}

/* ---- axes ---- */

typedef struct ax {
    double lo, hi; /* data range */
    double p0, p1; /* pixel positions of lo and hi */
    int log;
} ax;

static double ax_map(const ax *a, double v)
{
    double f = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo))
                      : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + f * (a->p1 - a->p0);
}

static int usable(double v, int log)
{
    return isfinite(v) && (!log || v > 0);
}

/* Widens [*lo, *hi] when it is empty, so a constant series gets a visible range. */
static void widen(double *lo, double *hi, int log)
{
    if (*hi - *lo > 1e-12 * fmax(fabs(*lo), fabs(*hi)) && *hi > *lo)
        return;
    double v = *lo;
    if (log) {
        *lo = v / 2;
        *hi = v * 2;
    } else {
        double pad = v != 0 ? fabs(v) * 0.1 : 1;
        *lo = v - pad;
        *hi = v + pad;
    }
}

enum { MAXTICKS = 64 };

/* Linear ticks with the range widened to whole steps. */
static size_t nice_axis(ax *a, int target, double *ticks, double *step)
{
    plot_nice_ticks(a->lo, a->hi, target, ticks, MAXTICKS, step);
    a->lo = floor(a->lo / *step + 1e-9) * *step;
    a->hi = ceil(a->hi / *step - 1e-9) * *step;
    return ticks_with_step(a->lo, a->hi, *step, ticks, MAXTICKS);
}

/* Log ticks: decades, and 2 and 5 times them when fewer than three decades show; the
 * range widens to the surrounding ticks. */
static size_t log_axis(ax *a, double *ticks, double *step)
{
    double d0 = floor(log10(a->lo) + 1e-9), d1 = ceil(log10(a->hi) - 1e-9);
    if (d1 <= d0)
        d1 = d0 + 1;
    int fine = d1 - d0 < 3;
    static const double mult[] = {1, 2, 5};
    double lo = a->lo, hi = a->hi;
    double below = pow(10, d0), above = pow(10, d1);
    size_t n = 0;
    for (double d = d0; d <= d1; d++) {
        for (int m = 0; m < (fine ? 3 : 1); m++) {
            double t = mult[m] * pow(10, d);
            if (t <= lo * (1 + 1e-9))
                below = t;
            if (t >= hi * (1 - 1e-9) && t < above)
                above = t;
        }
    }
    a->lo = below;
    a->hi = above;
    for (double d = d0; d <= d1 && n < MAXTICKS; d++)
        for (int m = 0; m < (fine ? 3 : 1) && n < MAXTICKS; m++) {
            double t = mult[m] * pow(10, d);
            if (t >= a->lo * (1 - 1e-9) && t <= a->hi * (1 + 1e-9))
                ticks[n++] = t;
        }
    *step = 0;
    return n;
}

static void log_label(char *buf, size_t size, double v)
{
    snprintf(buf, size, "%g", v);
}

/* ---- the loss plot ---- */

typedef struct legend_item {
    int kind; /* 0 raw line, 1 smoothed line, 2 accuracy (dashed with a dot) */
    const char *color;
    const char *label;
} legend_item;

enum { LEG_RAW, LEG_SMOOTH, LEG_ACC };

static void legend_sample(sb *b, const legend_item *it, double x, double y)
{
    switch (it->kind) {
    case LEG_RAW:
        sb_printf(b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-opacity=\"0.3\" stroke-width=\"1.5\"/>\n",
                  x, y, x + 24, y, it->color);
        break;
    case LEG_SMOOTH:
        sb_printf(b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2.2\"/>\n",
                  x, y, x + 24, y, it->color);
        break;
    default:
        sb_printf(b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\n"
                  "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"white\" "
                  "stroke-width=\"1\"/>\n",
                  x, y, x + 24, y, it->color, x + 12, y, it->color);
    }
}

enum { THIN_NONE, THIN_ENVELOPE, THIN_MEAN };

/* Writes polylines point by point, optionally reducing each pixel column to its extremes
 * or its mean. */
typedef struct pline {
    sb *b;
    const char *cls, *style;
    int thin;
    size_t total, in_line;         /* points written in all, and in the open polyline */
    long col;                      /* pixel column of the bucket */
    int have;                      /* the bucket holds points */
    double lo_x, lo_y, hi_x, hi_y; /* the bucket's lowest and highest data point, in pixels */
    size_t lo_i, hi_i;             /* and their indices, to keep them in order */
    double sx, sy;
    size_t cnt;
} pline;

static void pl_emit(pline *l, double px, double py)
{
    if (l->in_line == 0)
        sb_printf(l->b, "<polyline class=\"%s\" %s points=\"", l->cls, l->style);
    else
        sb_putc(l->b, ' ');
    sb_printf(l->b, "%.1f,%.1f", px, py);
    l->in_line++;
    l->total++;
}

static void pl_flush(pline *l)
{
    if (!l->have)
        return;
    if (l->thin == THIN_MEAN) {
        pl_emit(l, l->sx / (double)l->cnt, l->sy / (double)l->cnt);
    } else if (l->lo_i == l->hi_i) {
        pl_emit(l, l->lo_x, l->lo_y);
    } else if (l->lo_i < l->hi_i) {
        pl_emit(l, l->lo_x, l->lo_y);
        pl_emit(l, l->hi_x, l->hi_y);
    } else {
        pl_emit(l, l->hi_x, l->hi_y);
        pl_emit(l, l->lo_x, l->lo_y);
    }
    l->have = 0;
    l->sx = l->sy = 0;
    l->cnt = 0;
}

static void pl_end(pline *l)
{
    pl_flush(l);
    if (l->in_line)
        sb_printf(l->b, "\"/>\n");
    l->in_line = 0;
    l->col = LONG_MIN;
}

static void pl_point(pline *l, size_t i, double px, double py)
{
    if (l->thin == THIN_NONE) {
        pl_emit(l, px, py);
        return;
    }
    long c = (long)floor(px);
    if (c != l->col) {
        pl_flush(l);
        l->col = c;
    }
    /* pixel y grows downwards: the lowest data value has the largest py */
    if (!l->have || py > l->lo_y) {
        l->lo_x = px;
        l->lo_y = py;
        l->lo_i = i;
    }
    if (!l->have || py < l->hi_y) {
        l->hi_x = px;
        l->hi_y = py;
        l->hi_i = i;
    }
    l->sx += px;
    l->sy += py;
    l->cnt++;
    l->have = 1;
}

/* Appends one polyline per unbroken run of usable points (class `cls`). `thin` reduces
 * each pixel column to its minimum and maximum (THIN_ENVELOPE: noisy raw data keeps its
 * spread) or to its mean point (THIN_MEAN: a smooth line stays a line). Returns the
 * number of points written. */
static size_t draw_line(sb *b, const double *xs, const double *ys, size_t n, const ax *ax_x,
                        const ax *ax_y, int thin, const char *cls, const char *style)
{
    pline l = {.b = b, .cls = cls, .style = style, .thin = thin, .col = LONG_MIN};
    for (size_t i = 0; i < n; i++) {
        if (usable(xs[i], ax_x->log) && usable(ys[i], ax_y->log))
            pl_point(&l, i, ax_map(ax_x, xs[i]), ax_map(ax_y, ys[i]));
        else
            pl_end(&l);
    }
    pl_end(&l);
    return l.total;
}

static size_t count_usable(const double *xs, const double *ys, size_t n, int log_y)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += isfinite(xs[i]) && usable(ys[i], log_y);
    return c;
}

/* Splits text into at most `maxlines` lines of about `width` pixels at spaces. Writes
 * the start offsets and lengths; returns the line count. */
static int wrap(const char *s, double width, double font, int maxlines, size_t *start, size_t *len)
{
    int lines = 0;
    size_t n = strlen(s), pos = 0;
    size_t per_line = (size_t)fmax(8, width / (0.6 * font));
    while (pos < n && lines < maxlines) {
        while (pos < n && s[pos] == ' ')
            pos++;
        size_t end = pos + per_line;
        if (end >= n || lines == maxlines - 1) {
            end = n;
        } else {
            size_t sp = end;
            while (sp > pos && s[sp] != ' ')
                sp--;
            if (sp > pos)
                end = sp;
            /* never split a UTF-8 sequence */
            while (end < n && ((unsigned char)s[end] & 0xc0) == 0x80)
                end++;
        }
        start[lines] = pos;
        len[lines] = end - pos;
        lines++;
        pos = end;
    }
    return lines;
}

static double final_accuracy(const plot_series *r)
{
    double a = NAN;
    for (size_t e = 0; r->test_accuracy && e < r->nepochs; e++)
        if (isfinite(r->test_accuracy[e]) && isfinite(r->epoch_step[e]))
            a = r->test_accuracy[e];
    return a;
}

static int same_epochs(const plot_series *s, size_t ns)
{
    for (size_t i = 1; i < ns; i++) {
        if (s[i].nepochs != s[0].nepochs)
            return 0;
        for (size_t e = 0; e < s[0].nepochs; e++)
            if (s[i].epoch_step[e] != s[0].epoch_step[e])
                return 0;
    }
    return 1;
}

char *plot_loss_svg(const plot_series *series, size_t ns, const plot_options *opt)
{
    plot_options none = {0};
    if (!opt)
        opt = &none;
    double W = opt->width > 0 ? opt->width : 960, H = opt->height > 0 ? opt->height : 540;
    double w = opt->smoothing == 0 ? 0.9 : opt->smoothing;
    int smooth = w > 0 && w < 1;
    int log_y = opt->log_y != 0;
    const char *title = opt->title ? opt->title : "training loss";
    sb b = {0};
    double *ema = NULL;
    char lab[64];

    /* data ranges */
    ax x = {INFINITY, -INFINITY, 0, 0, 0}, y = {INFINITY, -INFINITY, 0, 0, log_y};
    ax acc = {INFINITY, -INFINITY, 0, 0, 0};
    size_t maxn = 0, points = 0;
    for (size_t s = 0; s < ns; s++) {
        const plot_series *r = &series[s];
        maxn = r->n > maxn ? r->n : maxn;
        for (size_t i = 0; i < r->n; i++) {
            if (!isfinite(r->step[i]) || !usable(r->loss[i], log_y))
                continue;
            x.lo = fmin(x.lo, r->step[i]);
            x.hi = fmax(x.hi, r->step[i]);
            y.lo = fmin(y.lo, r->loss[i]);
            y.hi = fmax(y.hi, r->loss[i]);
            points++;
        }
        for (size_t e = 0; e < r->nepochs; e++) {
            if (!isfinite(r->epoch_step[e]))
                continue;
            x.lo = fmin(x.lo, r->epoch_step[e]);
            x.hi = fmax(x.hi, r->epoch_step[e]);
            double a = r->test_accuracy ? 100 * r->test_accuracy[e] : NAN;
            if (isfinite(a)) {
                acc.lo = fmin(acc.lo, a);
                acc.hi = fmax(acc.hi, a);
            }
        }
    }
    int have_acc = acc.lo <= acc.hi;
    if (!(x.lo <= x.hi)) {
        x.lo = 0;
        x.hi = 1;
    }
    if (x.lo >= 0 && (x.lo <= 0.1 * x.hi || x.lo == x.hi))
        x.lo = 0; /* training starts at step 0 */
    widen(&x.lo, &x.hi, 0);
    if (!(y.lo <= y.hi)) {
        y.lo = log_y ? 0.1 : 0;
        y.hi = 1;
    }
    widen(&y.lo, &y.hi, log_y);
    if (have_acc) {
        widen(&acc.lo, &acc.hi, 0);
        acc.lo = fmax(acc.lo, 0);
        acc.hi = fmin(acc.hi, 100);
    }
    if (!(ema = malloc((maxn ? maxn : 1) * sizeof *ema)))
        return NULL;

    /* layout: title, subtitle lines, legend rows, plot area, x labels */
    double yt[MAXTICKS], xt[MAXTICKS], at[MAXTICKS], ystep, xstep, astep = 0;
    size_t nyt = log_y ? log_axis(&y, yt, &ystep) : nice_axis(&y, 6, yt, &ystep);
    size_t nat = have_acc ? nice_axis(&acc, 5, at, &astep) : 0;
    if (have_acc && (acc.hi > 100 || acc.lo < 0)) { /* whole steps may pass 0 or 100 % */
        acc.lo = fmax(acc.lo, 0);
        acc.hi = fmin(acc.hi, 100);
        nat = ticks_with_step(acc.lo, acc.hi, astep, at, MAXTICKS);
    }
    double ylab_w = 0, alab_w = 0;
    for (size_t i = 0; i < nyt; i++) {
        if (log_y)
            log_label(lab, sizeof lab, yt[i]);
        else
            plot_format_tick(lab, sizeof lab, yt[i], ystep);
        ylab_w = fmax(ylab_w, text_w(lab, 11));
    }
    for (size_t i = 0; i < nat; i++) {
        plot_format_tick(lab, sizeof lab, at[i], astep);
        alab_w = fmax(alab_w, text_w(lab, 11));
    }
    double left = 16 + 16 + ylab_w + 8;
    double right = W - (have_acc ? 16 + 16 + alab_w + 8 : 24);
    double top = 16 + 18; /* title baseline */
    size_t sub_start[3], sub_len[3];
    int sub_lines = opt->subtitle && opt->subtitle[0]
                        ? wrap(opt->subtitle, right - 16, 12, 3, sub_start, sub_len)
                        : 0;

    legend_item items[3 * NPALETTE + 4];
    char *owned[3 * NPALETTE + 4] = {0};
    int nitems = 0;
    char smooth_label[64], loss_smooth_label[80];
    snprintf(smooth_label, sizeof smooth_label, "smoothed (EMA %.2g)", w);
    snprintf(loss_smooth_label, sizeof loss_smooth_label, "loss, %s", smooth_label);
    int named = ns > 1 || (ns == 1 && series[0].name && series[0].name[0]);
    if (!named) {
        items[nitems++] = (legend_item){LEG_RAW, palette[0], "loss per batch"};
        if (smooth)
            items[nitems++] = (legend_item){LEG_SMOOTH, palette[0], loss_smooth_label};
        if (have_acc)
            items[nitems++] = (legend_item){LEG_ACC, palette[1], "test accuracy"};
    } else {
        /* each run's final test accuracy goes into its legend entry: labels at the line
         * ends would collide when the runs end close together */
        for (size_t s = 0; s < ns && nitems < 3 * NPALETTE; s++) {
            const char *name = series[s].name && series[s].name[0] ? series[s].name : "(unnamed)";
            double fa = final_accuracy(&series[s]);
            size_t len = strlen(name) + 32;
            if ((owned[nitems] = malloc(len)) == NULL) {
                b.oom = 1;
                break;
            }
            if (isfinite(fa))
                snprintf(owned[nitems], len, "%s (%.2f%%)", name, 100 * fa);
            else
                snprintf(owned[nitems], len, "%s", name);
            items[nitems] =
                (legend_item){smooth ? LEG_SMOOTH : LEG_RAW, palette[s % NPALETTE], owned[nitems]};
            nitems++;
        }
        items[nitems++] = (legend_item){LEG_RAW, "#555555", "per batch"};
        if (smooth)
            items[nitems++] = (legend_item){LEG_SMOOTH, "#555555", smooth_label};
        if (have_acc)
            items[nitems++] = (legend_item){LEG_ACC, "#555555", "test accuracy"};
    }
    /* legend rows */
    double leg_x[3 * NPALETTE + 4];
    int leg_row[3 * NPALETTE + 4], rows = 1;
    double cx = left;
    for (int i = 0; i < nitems; i++) {
        double iw = 24 + 6 + text_w(items[i].label, 12) + 20;
        if (cx + iw > right && cx > left) {
            rows++;
            cx = left;
        }
        leg_x[i] = cx;
        leg_row[i] = rows - 1;
        cx += iw;
    }
    double sub_y = top + 18;
    double leg_y = sub_y + 16 * (sub_lines > 0 ? sub_lines : 0) + 4;
    int markers = ns > 0 && series[0].nepochs > 0 && same_epochs(series, ns);
    /* epoch labels sit in a strip above the plot area, clear of the data */
    double plot_top = leg_y + 18 * rows + (markers ? 16 : 6);
    double plot_bottom = H - 46;
    if (plot_bottom - plot_top < 60)
        plot_bottom = plot_top + 60;
    H = plot_bottom + 46;
    x.p0 = left;
    x.p1 = right;
    y.p0 = plot_bottom;
    y.p1 = plot_top;
    acc.p0 = plot_bottom;
    acc.p1 = plot_top;
    size_t nxt =
        plot_nice_ticks(x.lo, x.hi, (int)fmax(4, (right - left) / 90), xt, MAXTICKS, &xstep);
    if (nxt > MAXTICKS)
        nxt = MAXTICKS;

    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n<title>",
              W, H, W, H, FONT);
    sb_text(&b, title);
    sb_printf(&b,
              "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
              "<defs><clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
              "height=\"%.1f\"/></clipPath></defs>\n",
              left, plot_top - 4, right - left, plot_bottom - plot_top + 8);

    /* title, subtitle, legend */
    sb_label(&b, left, top, "start", 16, "#222222", "font-weight=\"bold\" class=\"title\"", title);
    for (int i = 0; i < sub_lines; i++) {
        char *line = malloc(sub_len[i] + 1);
        if (!line) {
            b.oom = 1;
            break;
        }
        memcpy(line, opt->subtitle + sub_start[i], sub_len[i]);
        line[sub_len[i]] = '\0';
        sb_label(&b, left, sub_y + 16 * i, "start", 12, "#555555", "class=\"subtitle\"", line);
        free(line);
    }
    for (int i = 0; i < nitems; i++) {
        double ly = leg_y + 18 * leg_row[i];
        legend_sample(&b, &items[i], leg_x[i], ly - 4);
        sb_label(&b, leg_x[i] + 30, ly, "start", 12, "#333333", "class=\"legend\"", items[i].label);
    }

    /* grid and y ticks */
    sb_printf(&b, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (size_t i = 0; i < nyt; i++) {
        double py = ax_map(&y, yt[i]);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", left, py, right,
                  py);
    }
    for (size_t i = 0; i < nxt; i++) {
        double px = ax_map(&x, xt[i]);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, plot_top, px,
                  plot_bottom);
    }
    sb_printf(&b, "</g>\n");

    /* epoch markers: every epoch end, labels thinned so they do not collide */
    if (markers) {
        const plot_series *r = &series[0];
        double span = (right - left) / (double)r->nepochs;
        char probe[48];
        snprintf(probe, sizeof probe, "epoch %zu", r->nepochs);
        size_t stride = 1;
        while (stride < r->nepochs && span * (double)stride < text_w(probe, 10) + 10)
            stride = stride < 5 ? (stride == 1 ? 2 : 5) : stride * 2;
        int all_lines = span >= 6;
        sb_printf(&b, "<g class=\"epochs\">\n");
        for (size_t e = 0; e < r->nepochs; e++) {
            double st = r->epoch_step[e];
            int labelled = (e + 1) % stride == 0;
            if (!isfinite(st) || st < x.lo || st > x.hi || (!all_lines && !labelled))
                continue;
            double px = ax_map(&x, st);
            sb_printf(&b,
                      "<line class=\"epoch\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "stroke=\"#9a9a9a\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>\n",
                      px, plot_top, px, plot_bottom);
            if (labelled) {
                snprintf(probe, sizeof probe, "epoch %zu", e + 1);
                /* centred on its line, but kept within the plot's width */
                double half = text_w(probe, 10) / 2;
                const char *anchor = px + half > right  ? "end"
                                     : px - half < left ? "start"
                                                        : "middle";
                double lx = px + half > right ? right : px - half < left ? left : px;
                sb_label(&b, lx, plot_top - 4, anchor, 10, "#777777", NULL, probe);
            }
        }
        sb_printf(&b, "</g>\n");
    }

    /* loss lines: raw faint, smoothed on top */
    size_t limit = (size_t)(4 * (right - left));
    sb_printf(&b, "<g clip-path=\"url(#plot)\" fill=\"none\" stroke-linejoin=\"round\">\n");
    for (size_t s = 0; s < ns; s++) {
        const plot_series *r = &series[s];
        const char *col = palette[s % NPALETTE];
        int thin = count_usable(r->step, r->loss, r->n, log_y) > limit ? THIN_ENVELOPE : THIN_NONE;
        char style[160];
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-opacity=\"%s\" stroke-width=\"1\"", col,
                 smooth ? "0.25" : "0.9");
        draw_line(&b, r->step, r->loss, r->n, &x, &y, thin, "raw", style);
    }
    if (smooth) {
        for (size_t s = 0; s < ns; s++) {
            const plot_series *r = &series[s];
            plot_ema(r->loss, r->n, w, ema);
            if (log_y) /* the raw losses skipped on a log axis must not feed the average */
                for (size_t i = 0; i < r->n; i++)
                    if (!(r->loss[i] > 0))
                        ema[i] = NAN;
            int thin = count_usable(r->step, ema, r->n, log_y) > limit ? THIN_MEAN : THIN_NONE;
            char style[160];
            snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"2.2\"",
                     palette[s % NPALETTE]);
            draw_line(&b, r->step, ema, r->n, &x, &y, thin, "smooth", style);
        }
    }
    sb_printf(&b, "</g>\n");
    /* a lone point draws no line: mark it */
    for (size_t s = 0; s < ns; s++) {
        const plot_series *r = &series[s];
        if (count_usable(r->step, r->loss, r->n, log_y) != 1)
            continue;
        for (size_t i = 0; i < r->n; i++)
            if (isfinite(r->step[i]) && usable(r->loss[i], log_y))
                sb_printf(
                    &b, "<circle class=\"single\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    ax_map(&x, r->step[i]), ax_map(&y, r->loss[i]), palette[s % NPALETTE]);
    }
    if (points == 0)
        sb_label(&b, (left + right) / 2, (plot_top + plot_bottom) / 2, "middle", 14, "#888888",
                 NULL, "no finite loss values to plot");

    /* test accuracy: dashed line and points, the last value written next to it */
    if (have_acc) {
        for (size_t s = 0; s < ns; s++) {
            const plot_series *r = &series[s];
            const char *col = named ? palette[s % NPALETTE] : palette[1];
            if (!r->test_accuracy)
                continue;
            double *pct = malloc((r->nepochs ? r->nepochs : 1) * sizeof *pct);
            if (!pct) {
                b.oom = 1;
                break;
            }
            for (size_t e = 0; e < r->nepochs; e++)
                pct[e] = 100 * r->test_accuracy[e];
            char style[160];
            snprintf(style, sizeof style,
                     "fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"",
                     col);
            draw_line(&b, r->epoch_step, pct, r->nepochs, &x, &acc, THIN_NONE, "acc", style);
            size_t last = SIZE_MAX;
            for (size_t e = 0; e < r->nepochs; e++) {
                if (!isfinite(r->epoch_step[e]) || !isfinite(pct[e]))
                    continue;
                sb_printf(&b,
                          "<circle class=\"acc\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" "
                          "stroke=\"white\" stroke-width=\"1\"/>\n",
                          ax_map(&x, r->epoch_step[e]), ax_map(&acc, pct[e]), col);
                last = e;
            }
            if (last != SIZE_MAX && !named) {
                double px = ax_map(&x, r->epoch_step[last]), py = ax_map(&acc, pct[last]);
                snprintf(lab, sizeof lab, "%.2f%%", pct[last]);
                double ty = py - 8 < plot_top + 12 ? py + 16 : py - 8;
                sb_label(&b, px - 6, ty, "end", 11, col, "font-weight=\"bold\"", lab);
            }
            free(pct);
        }
    }

    /* frame, tick labels, axis titles */
    sb_printf(&b,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
              "stroke=\"#888888\" stroke-width=\"1\"/>\n",
              left, plot_top, right - left, plot_bottom - plot_top);
    sb_printf(&b, "<g class=\"yticks\">\n");
    for (size_t i = 0; i < nyt; i++) {
        if (log_y)
            log_label(lab, sizeof lab, yt[i]);
        else
            plot_format_tick(lab, sizeof lab, yt[i], ystep);
        sb_label(&b, left - 6, ax_map(&y, yt[i]) + 4, "end", 11, "#444444", NULL, lab);
    }
    sb_printf(&b, "</g>\n<g class=\"xticks\">\n");
    for (size_t i = 0; i < nxt; i++) {
        plot_format_tick(lab, sizeof lab, xt[i], xstep);
        sb_label(&b, ax_map(&x, xt[i]), plot_bottom + 16, "middle", 11, "#444444", NULL, lab);
    }
    sb_printf(&b, "</g>\n");
    if (have_acc) {
        sb_printf(&b, "<g class=\"aticks\">\n");
        for (size_t i = 0; i < nat; i++) {
            double py = ax_map(&acc, at[i]);
            plot_format_tick(lab, sizeof lab, at[i], astep);
            sb_printf(
                &b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888888\"/>\n",
                right, py, right + 4, py);
            sb_label(&b, right + 7, py + 4, "start", 11, "#444444", NULL, lab);
        }
        sb_printf(&b, "</g>\n");
        snprintf(lab, sizeof lab, "rotate(90 %.1f %.1f)", W - 14, (plot_top + plot_bottom) / 2);
        char extra[96];
        snprintf(extra, sizeof extra, "transform=\"%s\"", lab);
        sb_label(&b, W - 14, (plot_top + plot_bottom) / 2, "middle", 12, "#333333", extra,
                 "test accuracy (%)");
    }
    sb_label(&b, (left + right) / 2, plot_bottom + 36, "middle", 12, "#333333", NULL, "step");
    {
        char extra[96];
        snprintf(extra, sizeof extra, "transform=\"rotate(-90 %.1f %.1f)\"", 20.0,
                 (plot_top + plot_bottom) / 2);
        sb_label(&b, 20, (plot_top + plot_bottom) / 2, "middle", 12, "#333333", extra,
                 log_y ? "loss (log scale)" : "loss");
    }
    sb_printf(&b, "</svg>\n");
    for (int i = 0; i < nitems; i++)
        free(owned[i]);
    free(ema);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- from a CSV log ---- */

char *plot_log_svg(const csvlog_data *log, const plot_options *opt)
{
    size_t nr = log->nruns ? log->nruns : 1;
    plot_series *s = calloc(nr, sizeof *s);
    size_t *nb = calloc(nr, sizeof *nb), *ne = calloc(nr, sizeof *ne);
    double *buf = NULL;
    char *svg = NULL;
    if (!s || !nb || !ne)
        goto cleanup;
    for (size_t i = 0; i < log->nrows; i++) {
        const csvlog_row *r = &log->rows[i];
        if (r->run >= nr)
            continue;
        if (r->kind == CSVLOG_BATCH)
            nb[r->run]++;
        else
            ne[r->run]++;
    }
    /* One block; for each run: steps (nb), losses (nb), epoch steps (ne), accuracies (ne).
     * The series point into it and are filled through `fill`, their writable aliases. */
    size_t total = 0;
    for (size_t k = 0; k < nr; k++)
        total += 2 * nb[k] + 2 * ne[k];
    if (!(buf = malloc((total ? total : 1) * sizeof *buf)))
        goto cleanup;
    double *p = buf;
    for (size_t k = 0; k < nr; k++) {
        s[k].name = log->nruns > 1 ? log->runs[k] : NULL;
        s[k].step = p;
        s[k].loss = p + nb[k];
        s[k].epoch_step = p + 2 * nb[k];
        s[k].test_accuracy = p + 2 * nb[k] + ne[k];
        p += 2 * nb[k] + 2 * ne[k];
    }
    for (size_t i = 0; i < log->nrows; i++) {
        const csvlog_row *r = &log->rows[i];
        if (r->run >= nr)
            continue;
        plot_series *t = &s[r->run];
        double *fill = buf + (t->step - buf);
        if (r->kind == CSVLOG_BATCH) {
            fill[t->n] = (double)r->step;
            fill[nb[r->run] + t->n] = r->loss;
            t->n++;
        } else {
            fill[2 * nb[r->run] + t->nepochs] = (double)r->step;
            fill[2 * nb[r->run] + ne[r->run] + t->nepochs] = r->test_accuracy;
            t->nepochs++;
        }
    }
    svg = plot_loss_svg(s, nr, opt);
cleanup:
    free(buf);
    free(ne);
    free(nb);
    free(s);
    return svg;
}

/* ---- confusion matrix ---- */

/* ColorBrewer "Blues", white to dark blue, interpolated in sRGB. */
static void blues(double f, char *out, size_t size)
{
    static const unsigned char stops[5][3] = {
        {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    if (!(f >= 0))
        f = 0;
    if (f > 1)
        f = 1;
    double t = f * 4;
    int i = t >= 4 ? 3 : (int)t;
    double u = t - i;
    int c[3];
    for (int j = 0; j < 3; j++)
        c[j] = (int)lround(stops[i][j] + u * (stops[i + 1][j] - stops[i][j]));
    snprintf(out, size, "#%02x%02x%02x", c[0], c[1], c[2]);
}

char *plot_confusion_svg(const long long *counts, size_t k, const char *const *names,
                         const char *title)
{
    sb b = {0};
    char lab[64], col[16];
    char **num = NULL;
    if (k == 0)
        return NULL;
    if (!names) {
        if (!(num = calloc(k, sizeof *num)))
            return NULL;
        for (size_t i = 0; i < k; i++) {
            if (!(num[i] = malloc(24)))
                goto fail;
            snprintf(num[i], 24, "%zu", i);
        }
        names = (const char *const *)num;
    }
    if (!title)
        title = "confusion matrix";

    long long total = 0, correct = 0;
    for (size_t t = 0; t < k; t++)
        for (size_t p = 0; p < k; p++) {
            total += counts[t * k + p];
            if (t == p)
                correct += counts[t * k + p];
        }
    double cell = fmin(44, fmax(12, 480.0 / (double)k));
    double font = fmin(11, cell * 0.3);
    double name_font = fmin(11, cell * 0.85); /* class names and recall values */
    int show_counts = cell >= 22;
    double name_w = 0;
    for (size_t i = 0; i < k; i++)
        name_w = fmax(name_w, text_w(names[i], name_font));
    int rotate = name_w > cell - 4;
    double left = 16 + 16 + name_w + 10;
    double top = 16 + 18 + 18 + 24;
    double mw = cell * (double)k;
    double below = rotate ? name_w * 0.72 + 18 : 22;
    double recall_x = left + mw + 10;
    double bar_x = recall_x + 52 + 16;
    double W = fmax(bar_x + 14 + 44 + 16, left + text_w(title, 16) + 16);
    double H = top + mw + below + 30;

    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n<title>",
              W, H, W, H, FONT);
    sb_text(&b, title);
    sb_printf(&b, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    sb_label(&b, 16, 16 + 18, "start", 16, "#222222", "font-weight=\"bold\" class=\"title\"",
             title);
    if (total > 0)
        snprintf(lab, sizeof lab, "accuracy %.2f%% (%lld of %lld)",
                 100.0 * (double)correct / (double)total, correct, total);
    else
        snprintf(lab, sizeof lab, "no images counted");
    sb_label(&b, 16, 16 + 18 + 18, "start", 12, "#555555", "class=\"subtitle\"", lab);

    sb_printf(&b, "<g class=\"cells\">\n");
    for (size_t t = 0; t < k; t++) {
        long long row = 0;
        for (size_t p = 0; p < k; p++)
            row += counts[t * k + p];
        for (size_t p = 0; p < k; p++) {
            long long c = counts[t * k + p];
            double f = row > 0 ? (double)c / (double)row : 0;
            double cx = left + cell * (double)p, cy = top + cell * (double)t;
            blues(f, col, sizeof col);
            sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">",
                      cx, cy, cell, cell, col);
            sb_printf(&b, "<title>true ");
            sb_text(&b, names[t]);
            sb_printf(&b, ", predicted ");
            sb_text(&b, names[p]);
            sb_printf(&b, ": %lld (%.1f%% of the class)</title></rect>\n", c, 100 * f);
            if (show_counts) {
                snprintf(lab, sizeof lab, "%lld", c);
                const char *ink = c == 0 ? "#b0b0b0" : f > 0.45 ? "white" : "#222222";
                sb_label(&b, cx + cell / 2, cy + cell / 2 + font * 0.36, "middle", font, ink,
                         t == p ? "font-weight=\"bold\"" : NULL, lab);
            }
        }
    }
    sb_printf(&b, "</g>\n");
    /* the diagonal outlined, so the correct cells read at a glance */
    sb_printf(&b,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
              "stroke=\"#888888\" stroke-width=\"1\"/>\n",
              left, top, mw, mw);

    /* class names: rows on the left, columns below */
    for (size_t i = 0; i < k; i++) {
        double c = cell * ((double)i + 0.5);
        sb_label(&b, left - 6, top + c + name_font * 0.36, "end", name_font, "#333333", NULL,
                 names[i]);
        if (rotate) {
            char extra[96];
            snprintf(extra, sizeof extra, "transform=\"rotate(-45 %.1f %.1f)\"", left + c + 3,
                     top + mw + 10);
            sb_label(&b, left + c + 3, top + mw + 10, "end", name_font, "#333333", extra, names[i]);
        } else {
            sb_label(&b, left + c, top + mw + 15, "middle", name_font, "#333333", NULL, names[i]);
        }
    }
    sb_label(&b, left + mw / 2, top + mw + below + 12, "middle", 12, "#333333", NULL,
             "predicted class");
    {
        char extra[96];
        snprintf(extra, sizeof extra, "transform=\"rotate(-90 %.1f %.1f)\"", 20.0, top + mw / 2);
        sb_label(&b, 20, top + mw / 2, "middle", 12, "#333333", extra, "true class");
    }

    /* recall per class */
    sb_label(&b, recall_x + 26, top - 6, "middle", 11, "#333333", "font-weight=\"bold\"", "recall");
    for (size_t t = 0; t < k; t++) {
        long long row = 0;
        for (size_t p = 0; p < k; p++)
            row += counts[t * k + p];
        if (row > 0)
            snprintf(lab, sizeof lab, "%.1f%%", 100.0 * (double)counts[t * k + t] / (double)row);
        else
            snprintf(lab, sizeof lab, "-");
        sb_label(&b, recall_x + 50, top + cell * ((double)t + 0.5) + name_font * 0.36, "end",
                 name_font, "#333333", "class=\"recall\"", lab);
    }

    /* colour scale */
    sb_printf(&b, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int i = 0; i <= 4; i++) {
        blues(i / 4.0, col, sizeof col);
        sb_printf(&b, "<stop offset=\"%d%%\" stop-color=\"%s\"/>", 25 * i, col);
    }
    sb_printf(&b,
              "</linearGradient></defs>\n"
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"url(#scale)\" "
              "stroke=\"#888888\"/>\n",
              bar_x, top, mw);
    for (int i = 0; i <= 4; i++) {
        double py = top + mw * (1 - i / 4.0);
        snprintf(lab, sizeof lab, "%d%%", 25 * i);
        sb_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888888\"/>\n",
                  bar_x + 14, py, bar_x + 18, py);
        sb_label(&b, bar_x + 21, py + 4, "start", 10, "#444444", NULL, lab);
    }
    {
        char extra[96];
        snprintf(extra, sizeof extra, "transform=\"rotate(90 %.1f %.1f)\"", bar_x + 56,
                 top + mw / 2);
        sb_label(&b, bar_x + 56, top + mw / 2, "middle", 11, "#444444", extra,
                 mw >= 150 ? "share of the true class" : "row share");
    }
    sb_printf(&b, "</svg>\n");
    if (b.oom)
        goto fail;
    if (num) {
        for (size_t i = 0; i < k; i++)
            free(num[i]);
        free(num);
    }
    return b.p;
fail:
    if (num) {
        for (size_t i = 0; i < k; i++)
            free(num[i]);
        free(num);
    }
    free(b.p);
    return NULL;
}

/* ---- saving ---- */

int plot_save(const char *path, const char *svg)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp)
        return -1;
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        errno = e;
        return -1;
    }
    size_t n = strlen(svg);
    int bad = fwrite(svg, 1, n, f) != n;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad)
        remove(tmp);
    free(tmp);
    if (bad) {
        errno = e ? e : EIO;
        return -1;
    }
    return 0;
}

/* progress — the terminal progress line and per-epoch lines; see progress.h. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define C_RESET "\033[0m"
#define C_BOLD  "\033[1m"
#define C_DIM   "\033[2m"
#define C_GREEN "\033[32m"
#define C_CYAN  "\033[36m"

/* ---- formatting ---- */

double progress_eta(const progress_state *s)
{
    long long done = (long long)(s->epoch - 1) * s->steps + s->step;
    long long total = (long long)s->epochs * s->steps;
    if (done <= 0 || total <= 0 || !isfinite(s->elapsed_s) || s->elapsed_s < 0)
        return -1;
    if (done >= total)
        return 0;
    return s->elapsed_s / (double)done * (double)(total - done);
}

int progress_format_time(char *buf, size_t size, double seconds)
{
    if (!isfinite(seconds) || seconds < 0 || seconds > 1e12)
        return snprintf(buf, size, "-:--:--");
    long long t = (long long)(seconds + 0.5);
    return snprintf(buf, size, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
}

static void format_loss(char *buf, size_t size, double v)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else if (v != 0 && (fabs(v) < 1e-3 || fabs(v) >= 1e4))
        snprintf(buf, size, "%.3e", v);
    else
        snprintf(buf, size, "%.4f", v);
}

static void format_rate(char *buf, size_t size, double v)
{
    if (!(v > 0) || !isfinite(v))
        buf[0] = '\0';
    else
        snprintf(buf, size, v >= 100 ? "%.0f img/s" : "%.1f img/s", v);
}

/* Appends to a fixed buffer, tracking bytes and visible columns separately. */
typedef struct line {
    char *buf;
    size_t size, len;
    int cols;
    int color;
} line;

static void add(line *l, const char *s, int cols)
{
    size_t n = strlen(s);
    if (l->len + n >= l->size)
        n = l->size - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
    l->cols += cols;
}

static void add_text(line *l, const char *s)
{
    add(l, s, (int)strlen(s));
}

static void add_esc(line *l, const char *esc)
{
    if (l->color)
        add(l, esc, 0);
}

static int ndigits(long long v)
{
    int n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The bar: `cols` columns inside the brackets, fraction f filled. */
static void add_bar(line *l, int cols, double f, int unicode)
{
    static const char *const eighths[8] = {"",       "\u258f", "\u258e", "\u258d",
                                           "\u258c", "\u258b", "\u258a", "\u2589"};
    if (!(f >= 0))
        f = 0;
    if (f > 1)
        f = 1;
    long units = lround(f * cols * (unicode ? 8 : 1));
    int full = (int)(unicode ? units / 8 : units);
    int part = unicode ? (int)(units % 8) : 0;
    add_text(l, "[");
    add_esc(l, C_GREEN);
    for (int i = 0; i < full; i++)
        add(l, unicode ? "\u2588" : "#", 1);
    if (part)
        add(l, eighths[part], 1);
    add_esc(l, C_RESET);
    add_esc(l, C_DIM);
    for (int i = full + (part ? 1 : 0); i < cols; i++)
        add(l, unicode ? " " : "-", 1);
    add_esc(l, C_RESET);
    add_text(l, "]");
}

enum { MIN_BAR = 10, MAX_BAR = 40 };

/* The status line; *cols receives its width in terminal columns. */
static size_t format_status(char *buf, size_t size, const progress_state *s,
                            const progress_style *style, int *cols)
{
    progress_style plain = {80, 0, 0};
    if (!style)
        style = &plain;
    *cols = 0;
    if (size == 0)
        return 0;
    buf[0] = '\0';
    int budget = style->width - 1;

    char head[64], count[64], loss[32], rate[32], eta[32], t[24];
    snprintf(head, sizeof head, "epoch %d/%d", s->epoch, s->epochs);
    int w = ndigits(s->steps > 0 ? s->steps : 0);
    snprintf(count, sizeof count, "%*lld/%lld", w, s->step, s->steps);
    format_loss(t, sizeof t, s->loss);
    snprintf(loss, sizeof loss, "loss %s", t);
    format_rate(rate, sizeof rate, s->images_per_s);
    progress_format_time(t, sizeof t, progress_eta(s));
    snprintf(eta, sizeof eta, "ETA %s", t);

    /* Shown left to right; when the width is short the bar goes first, then rate, ETA
     * and loss, in that order. */
    const char *fields[4] = {count, loss, rate, eta};
    int keep[4] = {1, 1, rate[0] != 0, 1};
    static const int drop_order[3] = {2, 3, 1};
    int rest = (int)strlen(head);
    for (int i = 0; i < 4; i++)
        rest += keep[i] ? 2 + (int)strlen(fields[i]) : 0;
    int bar = budget - rest - 3;
    if (bar > MAX_BAR)
        bar = MAX_BAR;
    if (bar < MIN_BAR) {
        bar = 0;
        for (int k = 0; k < 3 && rest > budget; k++) {
            int i = drop_order[k];
            if (keep[i])
                rest -= 2 + (int)strlen(fields[i]);
            keep[i] = 0;
        }
    }

    line l = {buf, size, 0, 0, style->color};
    add_esc(&l, C_BOLD);
    add_text(&l, head);
    add_esc(&l, C_RESET);
    if (bar) {
        add_text(&l, " ");
        double f = s->steps > 0 ? (double)s->step / (double)s->steps : 0;
        add_bar(&l, bar, f, style->unicode);
    }
    for (int i = 0; i < 4; i++) {
        if (!keep[i])
            continue;
        add_text(&l, "  ");
        if (fields[i] == loss) {
            add_text(&l, "loss ");
            add_esc(&l, C_CYAN);
            add_text(&l, loss + 5);
            add_esc(&l, C_RESET);
        } else {
            add_text(&l, fields[i]);
        }
    }
    if (l.cols > budget && budget > 0 && !style->color) {
        /* No bar here, so the line is ASCII and cutting bytes cuts columns. */
        l.len = (size_t)budget < l.len ? (size_t)budget : l.len;
        buf[l.len] = '\0';
        l.cols = budget;
    }
    *cols = l.cols;
    return l.len;
}

size_t progress_format(char *buf, size_t size, const progress_state *s, const progress_style *style)
{
    int cols;
    return format_status(buf, size, s, style, &cols);
}

size_t progress_format_epoch(char *buf, size_t size, const progress_epoch *e, int verbose,
                             int color)
{
    if (size == 0)
        return 0;
    buf[0] = '\0';
    line l = {buf, size, 0, 0, color};
    char t[64];
    int w = ndigits(e->epochs > 0 ? e->epochs : 0);
    snprintf(t, sizeof t, "epoch %*d/%d", w, e->epoch, e->epochs);
    add_esc(&l, C_BOLD);
    add_text(&l, t);
    add_esc(&l, C_RESET);
    format_loss(t, sizeof t, e->train_loss);
    add_text(&l, "  train loss ");
    add_text(&l, t);
    if (!isnan(e->test_loss)) {
        format_loss(t, sizeof t, e->test_loss);
        add_text(&l, "  test loss ");
        add_text(&l, t);
    }
    if (!isnan(e->test_accuracy)) {
        snprintf(t, sizeof t, "%.2f%%", 100.0 * e->test_accuracy);
        add_text(&l, "  test acc ");
        add_esc(&l, C_GREEN);
        add_esc(&l, C_BOLD);
        add_text(&l, t);
        add_esc(&l, C_RESET);
    }
    format_rate(t, sizeof t, e->images_per_s);
    if (t[0]) {
        add_text(&l, "  ");
        add_text(&l, t);
    }
    if (isfinite(e->epoch_s) && e->epoch_s >= 0) {
        snprintf(t, sizeof t, "  %.1f s", e->epoch_s);
        add_text(&l, t);
    }
    if (verbose && !isnan(e->lr)) {
        snprintf(t, sizeof t, "  lr %.4g", e->lr);
        add_text(&l, t);
    }
    if (verbose && isfinite(e->elapsed_s)) {
        add_text(&l, "  total ");
        progress_format_time(t, sizeof t, e->elapsed_s);
        add_text(&l, t);
    }
    if (e->epoch < e->epochs && e->epoch > 0 && isfinite(e->elapsed_s) && e->elapsed_s >= 0) {
        double left = e->elapsed_s / e->epoch * (e->epochs - e->epoch);
        add_text(&l, "  ETA ");
        progress_format_time(t, sizeof t, left);
        add_text(&l, t);
    }
    return l.len;
}

/* ---- the writer ---- */

struct progress {
    FILE *out;
    int level, tty;
    progress_style style;
    int fixed_width;
    double redraw_s, line_s;
    int shown;        /* columns of the status line now on screen, 0 if none */
    double last_draw; /* elapsed_s of the last redraw or batch line */
    int last_epoch;   /* epoch of the last redraw */
};

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && v[0];
}

static int utf8_locale(void)
{
    const char *names[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && v[0])
            return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") ||
                   strstr(v, "utf-8");
    }
    return 0;
}

static int term_width(FILE *out)
{
#ifdef TIOCGWINSZ
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
#else
    (void)out;
#endif
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n > 0 ? n : 80;
}

progress *progress_create(FILE *out, const progress_options *opt)
{
    progress_options none = {0};
    if (!opt)
        opt = &none;
    progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->out = out;
    p->level = opt->level;
    p->tty = opt->tty == PROGRESS_AUTO ? isatty(fileno(out)) : opt->tty == PROGRESS_ON;
    if (opt->color == PROGRESS_AUTO) {
        const char *term = getenv("TERM");
        p->style.color = p->tty && !env_set("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
    } else {
        p->style.color = opt->color == PROGRESS_ON;
    }
    p->style.unicode = opt->unicode == PROGRESS_AUTO ? utf8_locale() : opt->unicode == PROGRESS_ON;
    p->fixed_width = opt->width;
    p->redraw_s = opt->redraw_s > 0 ? opt->redraw_s : 0.1;
    p->line_s = opt->line_s > 0 ? opt->line_s : 10.0;
    p->last_draw = -INFINITY;
    return p;
}

/* Blanks the status line so the next text starts at column 0 of a clean line. */
static void clear_status(progress *p)
{
    if (!p->shown)
        return;
    fprintf(p->out, "\r%*s\r", p->shown, "");
    p->shown = 0;
}

void progress_update(progress *p, const progress_state *s)
{
    if (!p || p->level == PROGRESS_QUIET)
        return;
    int last = s->step >= s->steps;
    int due = s->elapsed_s - p->last_draw >= (p->tty ? p->redraw_s : p->line_s);
    if (p->tty) {
        if (!due && !last && s->epoch == p->last_epoch)
            return;
        p->style.width = p->fixed_width > 0 ? p->fixed_width : term_width(p->out);
        char buf[2048];
        int now;
        format_status(buf, sizeof buf, s, &p->style, &now);
        /* '\r', the line, then blanks over what is left of a longer previous line */
        fprintf(p->out, "\r%s", buf);
        if (now < p->shown)
            fprintf(p->out, "%*s", p->shown - now, "");
        fflush(p->out);
        p->shown = now > 0 ? now : 1;
    } else {
        if (p->level < PROGRESS_VERBOSE || !due)
            return;
        progress_style wide = {1024, 0, 0};
        char buf[1024];
        progress_format(buf, sizeof buf, s, &wide);
        fprintf(p->out, "%s\n", buf);
        fflush(p->out);
    }
    p->last_draw = s->elapsed_s;
    p->last_epoch = s->epoch;
}

void progress_epoch_end(progress *p, const progress_epoch *e)
{
    if (!p || p->level == PROGRESS_QUIET)
        return;
    clear_status(p);
    char buf[1024];
    progress_format_epoch(buf, sizeof buf, e, p->level >= PROGRESS_VERBOSE, p->style.color);
    fprintf(p->out, "%s\n", buf);
    fflush(p->out);
    p->last_draw = -INFINITY; /* the next epoch's first batch draws at once */
}

void progress_note(progress *p, const char *fmt, ...)
{
    if (!p || p->level == PROGRESS_QUIET)
        return;
    clear_status(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
    p->last_draw = -INFINITY;
}

void progress_free(progress *p)
{
    if (!p)
        return;
    if (p->shown) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}

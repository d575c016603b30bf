/* tboard — TensorBoard event files; the format is described in tboard.h. */
#include "tboard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tboard {
    FILE *f;
    int failed; /* errno of the first failed write, 0 if none */
    char path[4096];
};

/* ---- CRC-32C ---- */

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t tboard_crc32c(uint32_t crc, const void *data, size_t n)
{
    if (!crc_ready)
        crc_init();
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t tboard_masked_crc32c(const void *data, size_t n)
{
    uint32_t c = tboard_crc32c(0, data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protobuf wire format ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int overflow;
} wbuf;

static void put_byte(wbuf *b, uint8_t v)
{
    if (b->n < b->cap)
        b->p[b->n] = v;
    else
        b->overflow = 1;
    b->n++;
}

static void put_varint(wbuf *b, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(b, (uint8_t)v);
}

static void put_le(wbuf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        put_byte(b, (uint8_t)(v >> (8 * i)));
}

static void put_key(wbuf *b, unsigned field, unsigned wire_type)
{
    put_varint(b, (uint64_t)field << 3 | wire_type);
}

static void put_bytes(wbuf *b, unsigned field, const void *data, size_t n)
{
    put_key(b, field, 2);
    put_varint(b, n);
    for (size_t i = 0; i < n; i++)
        put_byte(b, ((const uint8_t *)data)[i]);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t tboard_encode_event(uint8_t *buf, size_t cap, double wall_time, long long step,
                           const char *file_version, const char *tag, float value)
{
    wbuf b = {buf, 0, cap, 0};
    uint64_t bits;
    memcpy(&bits, &wall_time, sizeof bits);
    put_key(&b, 1, 1); /* wall_time: fixed64 */
    put_le(&b, bits, 8);
    if (file_version) {
        put_bytes(&b, 3, file_version, strlen(file_version));
    } else {
        if (step != 0) { /* proto3: a zero scalar is left out */
            put_key(&b, 2, 0);
            put_varint(&b, (uint64_t)step); /* negative int64: ten-byte two's complement */
        }
        size_t tag_len = strlen(tag);
        /* Value = tag (key, length, bytes) + simple_value (key, 4 bytes) */
        size_t value_len = 1 + varint_size(tag_len) + tag_len + 1 + 4;
        /* Summary = one Value (key, length, Value) */
        size_t summary_len = 1 + varint_size(value_len) + value_len;
        put_key(&b, 5, 2);
        put_varint(&b, summary_len);
        put_key(&b, 1, 2);
        put_varint(&b, value_len);
        put_bytes(&b, 1, tag, tag_len);
        uint32_t fbits;
        memcpy(&fbits, &value, sizeof fbits);
        put_key(&b, 2, 5); /* simple_value: fixed32 */
        put_le(&b, fbits, 4);
    }
    return b.overflow ? 0 : b.n;
}

size_t tboard_frame_record(uint8_t *buf, size_t cap, const uint8_t *data, size_t n)
{
    if (cap < 16 || n > cap - 16)
        return 0;
    memmove(buf + 12, data, n); /* first, so data may overlap buf */
    wbuf b = {buf, 0, cap, 0};
    put_le(&b, n, 8);
    put_le(&b, tboard_masked_crc32c(buf, 8), 4);
    b.n += n;
    put_le(&b, tboard_masked_crc32c(buf + 12, n), 4);
    return b.n;
}

/* ---- the file ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char tmp[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, dir, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int write_record(tboard *tb, const uint8_t *data, size_t n)
{
    uint8_t head[12], tail[4];
    wbuf b = {head, 0, sizeof head, 0};
    put_le(&b, n, 8);
    put_le(&b, tboard_masked_crc32c(head, 8), 4);
    wbuf t = {tail, 0, sizeof tail, 0};
    put_le(&t, tboard_masked_crc32c(data, n), 4);
    if (fwrite(head, 1, 12, tb->f) != 12 || fwrite(data, 1, n, tb->f) != n ||
        fwrite(tail, 1, 4, tb->f) != 4 || fflush(tb->f) != 0) {
        if (!tb->failed)
            tb->failed = errno ? errno : EIO;
    }
    if (tb->failed) {
        errno = tb->failed;
        return -1;
    }
    return 0;
}

int tboard_open(const char *dir, tboard **out)
{
    *out = NULL;
    if (make_dirs(dir) != 0)
        return -1;
    tboard *tb = calloc(1, sizeof *tb);
    if (!tb)
        return -1;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0 || !host[0])
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '/')
            *p = '_';
    double t0 = now_s();
    /* A second writer in the same second on the same host gets a numbered name. */
    for (int attempt = 0; attempt < 100 && !tb->f; attempt++) {
        int n;
        if (attempt == 0)
            n = snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%lld.%s", dir,
                         (long long)t0, host);
        else
            n = snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%lld.%s.%d", dir,
                         (long long)t0, host, attempt);
        if (n < 0 || (size_t)n >= sizeof tb->path) {
            errno = ENAMETOOLONG;
            break;
        }
        tb->f = fopen(tb->path, "wbx");
        if (!tb->f && errno != EEXIST)
            break;
    }
    if (!tb->f) {
        int e = errno;
        free(tb);
        errno = e;
        return -1;
    }
    uint8_t ev[64];
    size_t n = tboard_encode_event(ev, sizeof ev, t0, 0, "brain.Event:2", NULL, 0.0f);
    if (write_record(tb, ev, n) != 0) {
        int e = errno;
        fclose(tb->f);
        free(tb);
        errno = e;
        return -1;
    }
    *out = tb;
    return 0;
}

const char *tboard_path(const tboard *tb)
{
    return tb->path;
}

int tboard_scalar(tboard *tb, const char *tag, long long step, double value, double wall_time)
{
    uint8_t small[256];
    uint8_t *buf = small;
    size_t cap = strlen(tag) + 64, n;
    if (cap > sizeof small && !(buf = malloc(cap)))
        return -1;
    if (wall_time < 0)
        wall_time = now_s();
    n = tboard_encode_event(buf, cap, wall_time, step, NULL, tag, (float)value);
    int rc = write_record(tb, buf, n);
    if (buf != small)
        free(buf);
    return rc;
}

int tboard_close(tboard *tb)
{
    if (!tb)
        return 0;
    int e = tb->failed;
    if (fclose(tb->f) != 0 && !e)
        e = errno ? errno : EIO;
    free(tb);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

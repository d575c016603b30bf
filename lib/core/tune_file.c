/* The stored CLBlast parameters of a device (cltrain/tune.h): where the file lives, reading
 * it with every check, writing it atomically, and choosing what a context uses. Host-only:
 * the device is known by its ct_device_info, no OpenCL call is made here. */
#include <clblast_c.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

const char *ct_clblast_version(void)
{
    return STR(CLBLAST_VERSION_MAJOR) "." STR(CLBLAST_VERSION_MINOR) "." STR(CLBLAST_VERSION_PATCH);
}

ct_status ct_device_file(const ct_device_info *dev, const char *tag, const char *prefix, char *buf,
                         size_t cap)
{
    ct_status st = CT_SUCCESS;
    char dir[4096];
    CT_REQUIRE(dev && buf && cap, CT_ERR_INVALID_ARG, "%s file path: NULL argument", prefix);
    CT_REQUIRE(ct_cache_dir(dir, sizeof dir), CT_ERR_UNSUPPORTED,
               "no cache folder (CLTRAIN_CACHE=0, or none of CLTRAIN_CACHE_DIR, XDG_CACHE_HOME "
               "and HOME is set)");
    /* the device as the program cache knows it, minus the platform version (a PoCL
     * rebuild that keeps the driver version keeps its tuning) */
    const char *parts[] = {tag, dev->name, dev->driver, dev->platform};
    uint64_t h = CT_HASH64_INIT;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        h = ct_hash64(h, parts[i], strlen(parts[i]) + 1);
    int n = snprintf(buf, cap, "%s/%s-%016llx.txt", dir, prefix, (unsigned long long)h);
    CT_REQUIRE(n >= 0 && (size_t)n < cap, CT_ERR_INVALID_ARG, "the cache path %s is too long", dir);
cleanup:
    return st;
}

ct_status ct_tune_file_path(const ct_device_info *dev, char *buf, size_t cap)
{
    return ct_device_file(dev, "cltrain clblast params", "clblast", buf, cap);
}

ct_status ct_read_small_file(const char *path, char **text, size_t *len)
{
    ct_status st = CT_SUCCESS;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f && errno == ENOENT)
        CT_FAIL(CT_ERR_NOT_FOUND, "%s does not exist", path);
    CT_REQUIRE(f != NULL, CT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(CT_TUNE_FILE_MAX + 1);
    CT_REQUIRE(buf != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    size_t n = fread(buf, 1, CT_TUNE_FILE_MAX + 1, f);
    CT_REQUIRE(!ferror(f), CT_ERR_IO, "cannot read %s", path);
    CT_REQUIRE(n <= CT_TUNE_FILE_MAX, CT_ERR_FORMAT, "the file is larger than %d bytes",
               CT_TUNE_FILE_MAX);
    *text = buf;
    *len = n;
    buf = NULL;
cleanup:
    if (f)
        fclose(f);
    free(buf);
    return st;
}

ct_status ct_tune_file_read(const char *path, const ct_device_info *dev, ct_clblast_params *out,
                            ct_tune_file_info *info)
{
    ct_status st = CT_SUCCESS;
    char *text = NULL;
    size_t n = 0;
    ct_tune_file_info fi;
    CT_REQUIRE(path && dev && out, CT_ERR_INVALID_ARG, "ct_tune_file_read: NULL argument");
    CT_TRY(ct_read_small_file(path, &text, &n));
    CT_TRY(ct_tune_file_parse(text, n, out, &fi));
    CT_TRY(ct_tune_file_same_device(&fi, dev, "cltrain tune"));
    CT_REQUIRE(strcmp(fi.clblast, ct_clblast_version()) == 0, CT_ERR_FORMAT,
               "made for CLBlast %s, this is %s (run cltrain tune again)", fi.clblast,
               ct_clblast_version());
    if (info)
        *info = fi;
cleanup:
    free(text);
    return st;
}

ct_status ct_tune_file_same_device(const ct_tune_file_info *fi, const ct_device_info *dev,
                                   const char *again)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(strcmp(fi->device, dev->name) == 0, CT_ERR_FORMAT,
               "made for the device '%s', not '%s'", fi->device, dev->name);
    CT_REQUIRE(strcmp(fi->platform, dev->platform) == 0, CT_ERR_FORMAT,
               "made on the platform '%s', not '%s'", fi->platform, dev->platform);
    CT_REQUIRE(strcmp(fi->driver, dev->driver) == 0, CT_ERR_FORMAT,
               "made with driver %s, this is %s (run %s again)", fi->driver, dev->driver, again);
cleanup:
    return st;
}

const char *ct_next_line(const char *text, size_t len, size_t *at, size_t *lineno, size_t *n)
{
    while (*at < len) {
        const char *s = text + *at, *nl = memchr(s, '\n', len - *at);
        *n = (size_t)(nl - s); /* nl exists: ct_text_check saw the final '\n' */
        *at += *n + 1;
        if (++*lineno > 1 && *n > 0 && s[0] != '#')
            return s;
    }
    return NULL;
}

ct_status ct_text_check(const char *text, size_t len, const char *magic)
{
    ct_status st = CT_SUCCESS;
    size_t at = 0, lineno = 0;
    CT_REQUIRE(len > 0, CT_ERR_FORMAT, "the file is empty");
    CT_REQUIRE(len <= CT_TUNE_FILE_MAX, CT_ERR_FORMAT, "the file is larger than %d bytes",
               CT_TUNE_FILE_MAX);
    CT_REQUIRE(text[len - 1] == '\n', CT_ERR_FORMAT,
               "the file does not end with a newline (truncated?)");
    while (at < len) {
        const char *s = text + at, *nl = memchr(s, '\n', len - at);
        size_t n = (size_t)(nl - s); /* nl exists: the text ends with '\n' */
        at += n + 1;
        lineno++;
        CT_REQUIRE(n < CT_TUNE_LINE_MAX, CT_ERR_FORMAT, "line %zu is longer than %d bytes", lineno,
                   CT_TUNE_LINE_MAX - 1);
        for (size_t i = 0; i < n; i++)
            CT_REQUIRE((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, CT_ERR_FORMAT,
                       "line %zu: control character 0x%02x", lineno, (unsigned char)s[i]);
        if (lineno == 1)
            CT_REQUIRE(n == strlen(magic) && memcmp(s, magic, n) == 0, CT_ERR_FORMAT,
                       "line 1: expected '%s'", magic);
    }
cleanup:
    return st;
}

void ct_one_line(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? ' ' : src[i];
    dst[i] = '\0';
}

ct_status ct_write_text_atomic(const char *path, const char *text)
{
    ct_status st = CT_SUCCESS;
    FILE *f = NULL;
    char tmp[4200], dir[4096];
    bool made = false;
    CT_REQUIRE(snprintf(dir, sizeof dir, "%s", path) < (int)sizeof dir, CT_ERR_INVALID_ARG,
               "path too long: %s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        CT_REQUIRE(ct_mkdir_p(dir) == 0, CT_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    }
    CT_REQUIRE(snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < (int)sizeof tmp,
               CT_ERR_INVALID_ARG, "path too long: %s", path);
    f = fopen(tmp, "w");
    CT_REQUIRE(f != NULL, CT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    made = true;
    fputs(text, f);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && !ferror(f);
    ok = fclose(f) == 0 && ok;
    f = NULL;
    CT_REQUIRE(ok, CT_ERR_IO, "writing %s failed: %s", tmp, strerror(errno));
    CT_REQUIRE(rename(tmp, path) == 0, CT_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
               strerror(errno));
    made = false;
cleanup:
    if (f)
        fclose(f);
    if (made)
        unlink(tmp);
    return st;
}

void ct_utc_date(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, cap, "unknown");
}

ct_status ct_tune_file_write(const char *path, const ct_device_info *dev,
                             const ct_clblast_params *p, const char *shapes)
{
    ct_status st = CT_SUCCESS;
    char date[64], families[1024], name[256], platform[256], driver[128], shp[CT_TUNE_LINE_MAX - 8],
        text[CT_TUNE_FILE_MAX];
    CT_REQUIRE(path && dev && p, CT_ERR_INVALID_ARG, "ct_tune_file_write: NULL argument");
    CT_TRY(ct_clblast_params_check(p));
    CT_TRY(ct_clblast_params_format(p, families, sizeof families));
    ct_utc_date(date, sizeof date);
    ct_one_line(name, sizeof name, dev->name);
    ct_one_line(platform, sizeof platform, dev->platform);
    ct_one_line(driver, sizeof driver, dev->driver);
    ct_one_line(shp, sizeof shp, shapes && *shapes ? shapes : "unknown");
    int n = snprintf(text, sizeof text,
                     "cltrain-clblast-params 1\n"
                     "# CLBlast GEMM parameters for this device, written by 'cltrain tune'; "
                     "applied by\n"
                     "# every cltrain context on it. 'cltrain tune --reset' or deleting the file "
                     "returns\n"
                     "# to the built-in set.\n"
                     "device %s\nplatform %s\ndriver %s\nclblast %s\ndate %s\nshapes %s\n%s",
                     name, platform, driver, ct_clblast_version(), date, shp, families);
    CT_REQUIRE(n > 0 && (size_t)n < sizeof text, CT_ERR_INVALID_ARG, "the file would be too long");
    CT_TRY(ct_write_text_atomic(path, text));
cleanup:
    return st;
}

void ct_error_reason(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", ct_last_error());
    for (;;) {
        size_t n = strlen(buf);
        char *open = strrchr(buf, '(');
        if (n < 2 || buf[n - 1] != ')' || !open || open == buf || open[-1] != ' ' ||
            !strchr(open, ':') || !strchr(open, ','))
            return;
        open[-1] = '\0';
    }
}

bool ct_tune_resolve(const ct_device_info *dev, ct_clblast_params *out, char *source, size_t cap)
{
    char path[4200], why[1024], ignored[1100] = "";
    const char *env = getenv("CLTRAIN_CLBLAST_TUNE");
    if (env && strcmp(env, "0") == 0) {
        snprintf(source, cap, "CLBlast's defaults (CLTRAIN_CLBLAST_TUNE=0)");
        return false;
    }
    if (ct_tune_file_path(dev, path, sizeof path) == CT_SUCCESS) {
        ct_clblast_params p;
        ct_status st = ct_tune_file_read(path, dev, &p, NULL);
        if (st == CT_SUCCESS) {
            *out = p;
            snprintf(source, cap, "stored: %s", path);
            return true;
        }
        if (st != CT_ERR_NOT_FOUND) {
            ct_error_reason(why, sizeof why);
            snprintf(ignored, sizeof ignored, "ignored %s: %s", path, why);
        }
    }
    ct_error_clear();
    if (dev->is_gpu) {
        snprintf(source, cap, "CLBlast's database (GPU%s%s)", *ignored ? "; " : "", ignored);
        return false;
    }
    ct_clblast_params_builtin(out);
    if (*ignored)
        snprintf(source, cap, "built-in (%s)", ignored);
    else
        snprintf(source, cap, "built-in");
    return true;
}

/* The on-disk cache folder, shared by the program-binary cache (program.c) and the stored
 * CLBlast parameters (tune_file.c). Host-only: no OpenCL here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"

int ct_cache_dir(char *buf, size_t n)
{
    const char *off = getenv("CLTRAIN_CACHE");
    if (off && (strcmp(off, "0") == 0 || strcmp(off, "off") == 0))
        return 0;
    const char *d = getenv("CLTRAIN_CACHE_DIR");
    if (d && *d)
        return snprintf(buf, n, "%s", d) < (int)n;
    d = getenv("XDG_CACHE_HOME");
    if (d && *d)
        return snprintf(buf, n, "%s/cltrain", d) < (int)n;
    d = getenv("HOME");
    if (d && *d)
        return snprintf(buf, n, "%s/.cache/cltrain", d) < (int)n;
    return 0;
}

int ct_mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return (mkdir(tmp, 0755) == 0 || errno == EEXIST) ? 0 : -1;
}

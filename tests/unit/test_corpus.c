/* The fuzzing corpora of the dataset readers (tests/fuzz/corpus/{idx,cifar}) replayed as
 * ordinary tests, so every CI run checks them even without clang's libFuzzer: each file
 * is either read successfully with a self-consistent result or refused with
 * CT_ERR_FORMAT and a message naming it. The expected verdict of the hand-made seeds is
 * known and checked too. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "testutil.h"

#ifndef CT_CORPUS_DIR
#define CT_CORPUS_DIR CT_GOLDEN_DIR "/../../fuzz/corpus"
#endif

static size_t replay(const char *sub, int is_idx, const char *must_fail_prefix)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", CT_CORPUS_DIR, sub);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "corpus folder %s missing", dir);
    size_t files = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ct_status st;
        if (is_idx) {
            ct_idx idx = {0};
            st = ct_idx_read(path, 64u << 20, &idx);
            if (st == CT_SUCCESS) {
                size_t n = 1;
                for (size_t i = 0; i < idx.ndim; i++)
                    n *= idx.dims[i];
                cr_assert_eq(n, idx.count, "%s: dims disagree with the data size", path);
            }
            ct_idx_release(&idx);
        } else {
            size_t count = 0;
            uint8_t *img = NULL, *lab = NULL;
            st = ct_cifar_append(path, 64u << 20, &count, &img, &lab);
            if (st == CT_SUCCESS)
                for (size_t i = 0; i < count; i++)
                    cr_assert_lt(lab[i], 10, "%s: label out of range accepted", path);
            free(img);
            free(lab);
        }
        cr_assert(st == CT_SUCCESS || st == CT_ERR_FORMAT, "%s: %s (%s)", path,
                  ct_status_str(st), ct_last_error());
        if (st != CT_SUCCESS)
            cr_assert(strstr(ct_last_error(), e->d_name) != NULL,
                      "%s: the message does not name the file: %s", path, ct_last_error());
        if (strncmp(e->d_name, must_fail_prefix, strlen(must_fail_prefix)) == 0 ||
            strstr(e->d_name, "short") || strstr(e->d_name, "bad_") ||
            strstr(e->d_name, "truncated"))
            cr_assert_eq(st, CT_ERR_FORMAT, "%s should be refused", path);
        files++;
    }
    closedir(d);
    return files;
}

Test(corpus, idx_files_are_read_or_refused_cleanly)
{
    cr_assert_geq(replay("idx", 1, "crash-"), 5);
}

Test(corpus, cifar_files_are_read_or_refused_cleanly)
{
    cr_assert_geq(replay("cifar", 0, "crash-"), 3);
}

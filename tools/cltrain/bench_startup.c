/* cltrain bench --startup: a fresh process to its first training step done.
 *
 * The parent starts `cltrain bench --startup-child ...` (this same executable) and takes
 * the time from just before the spawn to the moment the child prints, right after its
 * first step has finished on the device (CLOCK_MONOTONIC is shared by both processes).
 * The child does what a training program does: opens the device, builds the model,
 * optimizer and trainer, uploads a batch, runs one step. Warm: the kernel caches as they
 * are, after one untimed run has filled them. Cold: POCL_CACHE_DIR and CLTRAIN_CACHE_DIR
 * pointed at new empty folders, so every kernel is compiled from source, CLBlast's too.
 */
#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

int bench_startup_child(bench *b)
{
    ct_context *ctx = NULL;
    bench_rig r = {0};
    bench_data d = {0};
    int rc = 1;
    if (ct_context_create(b->o.device, 0, &ctx) || bench_rig_make(ctx, b, &r) ||
        bench_data_make(ctx, b, b->o.batch, b->o.seed, &d) ||
        ct_trainer_step(r.tr, d.x, d.y, NULL) || ct_context_finish(ctx)) {
        rc = bench_fail("start-up run");
    } else {
        printf("first-step-done %.6f\n", bench_now());
        rc = 0;
    }
    fflush(stdout);
    bench_data_free(&d);
    bench_rig_free(&r);
    ct_context_free(ctx);
    return rc;
}

static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *sub = malloc(len);
        if (sub) {
            snprintf(sub, len, "%s/%s", path, e->d_name);
            remove_tree(sub);
            free(sub);
        }
    }
    if (dir)
        closedir(dir);
    rmdir(path);
}

/* Runs the child with `extra_env` entries ("NAME=value", NULL-terminated; they replace
 * inherited ones). *seconds: from just before the spawn to the child's first step done. */
static int spawn_child(const bench *b, char **extra_env, double *seconds)
{
    char self[4096], bs[32], shape[64];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = '\0';
    snprintf(bs, sizeof bs, "%zu", b->o.batch);
    if (b->o.in_ndim == 3)
        snprintf(shape, sizeof shape, "%zu,%zu,%zu", b->o.in_shape[0], b->o.in_shape[1],
                 b->o.in_shape[2]);
    else
        snprintf(shape, sizeof shape, "%zu", b->o.in_shape[0]);
    char *argv[16] = {self,
                      "bench",
                      "--startup-child",
                      "--model",
                      (char *)b->o.model,
                      "--input",
                      shape,
                      "--batch",
                      bs,
                      "--optimizer",
                      (char *)ct_optim_kind_name(b->o.optim)};
    if (b->o.device) {
        argv[11] = "--device";
        argv[12] = (char *)b->o.device;
    }
    size_t nenv = 0, next = 0, k = 0;
    while (environ[nenv])
        nenv++;
    while (extra_env && extra_env[next])
        next++;
    char **env = calloc(nenv + next + 1, sizeof *env);
    int fds[2] = {-1, -1}, rc = -1, status = 0, errfd = -1;
    char errpath[] = "/tmp/cltrain-bench-child-XXXXXX";
    if (!env || pipe(fds) != 0)
        goto done;
    for (size_t i = 0; i < next; i++)
        env[k++] = extra_env[i];
    for (size_t i = 0; i < nenv; i++) {
        bool replaced = false;
        for (size_t j = 0; j < next && !replaced; j++)
            replaced = strncmp(environ[i], extra_env[j], strcspn(extra_env[j], "=") + 1) == 0;
        if (!replaced)
            env[k++] = environ[i];
    }
    /* the child's stderr (compiler warnings of a cold build, errors) goes to a file,
     * shown only when the child fails */
    errfd = mkstemp(errpath);
    if (errfd < 0)
        goto done;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    double t0 = bench_now();
    int e = posix_spawn(&pid, self, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    fds[1] = -1;
    if (e != 0)
        goto done;
    char buf[256];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    waitpid(pid, &status, 0);
    double done_at = 0;
    const char *p = strstr(buf, "first-step-done ");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && p &&
        sscanf(p, "first-step-done %lf", &done_at) == 1) {
        *seconds = done_at - t0;
        rc = 0;
    } else {
        char line[512];
        FILE *f = fdopen(dup(errfd), "r");
        if (f) {
            fseek(f, 0, SEEK_SET);
            while (fgets(line, sizeof line, f))
                fputs(line, stderr);
            fclose(f);
        }
    }
done:
    if (errfd >= 0) {
        close(errfd);
        unlink(errpath);
    }
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    free(env);
    return rc;
}

int bench_section_startup(bench *b)
{
    double warm[5];
    const size_t nwarm = sizeof warm / sizeof warm[0];
    printf("\nstart-up: a new process to its first training step done, batch %zu\n", b->o.batch);
    for (size_t i = 0; i <= nwarm; i++) /* run 0 fills the caches if they were empty */
        if (spawn_child(b, NULL, &warm[i ? i - 1 : 0]) != 0) {
            fprintf(stderr, "cltrain bench: the start-up child failed\n");
            return 1;
        }
    double best = bench_min(warm, nwarm), med = bench_median(warm, nwarm);
    printf("  warm (caches filled)           median %.3f s, best %.3f s of %zu\n", med, best,
           nwarm);
    bench_csv(b, "startup", "warm", b->o.batch, "seconds_median", med);
    bench_csv(b, "startup", "warm", b->o.batch, "seconds_best", best);

    const char *tmp = getenv("TMPDIR");
    char pocl[512], ours[512], e1[600], e2[600];
    snprintf(pocl, sizeof pocl, "%s/cltrain-bench-pocl-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    snprintf(ours, sizeof ours, "%s/cltrain-bench-cache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(pocl) || !mkdtemp(ours)) {
        fprintf(stderr, "cltrain bench: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(e1, sizeof e1, "POCL_CACHE_DIR=%s", pocl);
    snprintf(e2, sizeof e2, "CLTRAIN_CACHE_DIR=%s", ours);
    char *env[] = {e1, e2, NULL};
    double cold = 0;
    printf("  cold (empty PoCL and cltrain caches) ... ");
    fflush(stdout);
    int r = spawn_child(b, env, &cold);
    remove_tree(pocl);
    remove_tree(ours);
    if (r != 0) {
        fprintf(stderr, "\ncltrain bench: the cold start-up child failed\n");
        return 1;
    }
    printf("%.2f s (one run)\n", cold);
    bench_csv(b, "startup", "cold", b->o.batch, "seconds", cold);
    return 0;
}

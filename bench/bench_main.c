/* A stand-in for `cltrain bench` while tools/cltrain/main.c does not dispatch to
 * cli_bench() yet: `bench_main bench [options]` or `bench_main [options]`.
 * bench/run.sh builds it only when the cltrain executable lacks the subcommand. */
#include <string.h>

#include "cmd_bench.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    return cli_bench(argc, argv);
}

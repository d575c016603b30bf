/* cltrain bench — training and inference speed of a model on a device, and where the time
 * goes (see cmd_bench.c). */
#ifndef CLTRAIN_CMD_BENCH_H
#define CLTRAIN_CMD_BENCH_H

/* The `cltrain bench` subcommand: argv[0] is "bench". Returns the exit code. */
int cli_bench(int argc, char **argv);

#endif

/* What the cltrain subcommands share. */
#ifndef CLTRAIN_CLI_H
#define CLTRAIN_CLI_H

#include "cltrain/cltrain.h"

int cli_devices(int argc, char **argv);
int cli_gemm(int argc, char **argv);
int cli_train(int argc, char **argv);   /* cmd_train.c */
int cli_compare(int argc, char **argv); /* cmd_compare.c */
int cli_eval(int argc, char **argv);    /* cmd_eval.c */
int cli_tune(int argc, char **argv);    /* cmd_tune.c */

/* Prints "cltrain: WHAT: <last error>" to stderr and returns exit code 1. */
int cli_fail(const char *what, ct_status st);
/* A context on `device` that announces first-run kernel compilation on stderr. */
ct_status cli_context(const char *device, unsigned flags, ct_context **out);
/* Says once, before the first GEMM, that CLBlast compiles its kernels (it keeps no cache
 * of its own; PoCL's cache makes later runs fast) when this process compiled kernels
 * from source, i.e. on cold caches. */
void cli_note_gemm_build(ct_context *ctx);
/* --quiet: no compilation notes either. */
void cli_set_quiet(int quiet);

#endif

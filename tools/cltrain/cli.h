/* What the cltrain subcommands share. */
#ifndef CLTRAIN_CLI_H
#define CLTRAIN_CLI_H

#include "cltrain/cltrain.h"

int cli_devices(int argc, char **argv);
int cli_gemm(int argc, char **argv);

/* Prints "cltrain: WHAT: <last error>" to stderr and returns exit code 1. */
int cli_fail(const char *what, ct_status st);
/* A context on `device` that announces first-run kernel compilation on stderr. */
ct_status cli_context(const char *device, unsigned flags, ct_context **out);

#endif

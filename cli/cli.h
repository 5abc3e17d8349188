/* cli/: the command line. The only folder that prints: data to stdout, diagnostics to stderr. */
#ifndef MAR_CLI_H
#define MAR_CLI_H

#include "binfmt/binfmt.h"
#include "builder/builder.h"
#include "registry/registry.h"
#include "vm/vm.h"

/* Runs mar with its arguments; returns the exit status (docs/mar.1.md EXIT STATUS). */
int cmd_main(int argc, char **argv);

#endif

/* builder/: what a project builds and runs, read from its own files. */
#ifndef MAR_BUILDER_H
#define MAR_BUILDER_H

#include "util/util.h"

/* ---------------------------------------------------------------------------------------------
 * Project inputs (mar audit): every image reference a project uses, with the file and line it
 * came from (inputs.c). */

/* The biggest input file read. */
#define BLD_INPUT_CAP (16u << 20)

typedef enum {
    BLD_INPUT_LIST,
    BLD_INPUT_COMPOSE,
    BLD_INPUT_K8S,
    BLD_INPUT_DOCKERFILE,
} bld_input_kind;

/* One place an image reference is used. */
typedef struct bld_input_use {
    char *image; /* as written (Dockerfile ARGs substituted) */
    char *file;
    size_t line;       /* 1-based */
    char *context;     /* "service web", "Deployment/api container app", "FROM (stage build)" */
    char *pin;         /* compose `platform:` or FROM --platform=, or NULL */
    size_t pin_line;   /* where the pin is written */
    char *service;     /* compose service name, or NULL */
    size_t builds_for; /* compose build.platforms count */
    bld_input_kind kind;
} bld_input_use;

typedef struct bld_inputs {
    bld_input_use *v;
    size_t n;
} bld_inputs;

#define BLD_INPUTS_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

/* Reads one input file ("-" for stdin, named "<stdin>" in the uses) and appends its uses to in,
 * detected by name and content as bld_inputs_parse does. Errors: MAR_EIO, MAR_ENOTFOUND, and
 * those of bld_inputs_parse. */
int bld_inputs_read(const char *path, bld_inputs *in, mar_err **err);
/* Appends the uses of the len bytes at data, read from the file `name`: a Dockerfile (by name,
 * or a first instruction FROM or ARG), else compose or Kubernetes YAML, else a plain list of
 * references. Errors: MAR_EUSAGE (malformed YAML, with file:line); in is then unchanged or
 * holds the uses of the documents before the bad one. */
int bld_inputs_parse(const char *name, const char *data, size_t len, bld_inputs *in, mar_err **err);
/* bld_inputs_parse without the Dockerfile detection: compose or Kubernetes YAML, else a plain
 * list. Errors: as bld_inputs_parse. */
int bld_inputs_parse_yaml_or_list(const char *name, const char *data, size_t len, bld_inputs *in,
                                  mar_err **err);
void bld_inputs_release(bld_inputs *in);

#endif

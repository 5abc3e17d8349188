/* A seccomp profile before it meets a container: groups of syscalls with an action, argument
 * filters and the conditions (capabilities, the kernel's architecture and version) under which
 * each group applies. Both mar's own format (vm/seccomp/default.txt) and Docker's JSON profiles
 * are read into it; seccomp.c evaluates it for one container and writes the OCI runtime spec's
 * `linux.seccomp` (docs/internals/seccomp.md). */
#ifndef MAR_VM_SECCOMP_INTERNAL_H
#define MAR_VM_SECCOMP_INTERNAL_H

#include "vm.h"

/* libseccomp compares at most six syscall arguments (SCMP_ARG 0..5); a rule names each at most
 * once in practice, so six conditions are enough for any profile mar accepts. */
#define VM__SC_MAX_ARGS 6

typedef struct vm__sc_arg {
    unsigned index;
    uint64_t value;
    uint64_t value_two;
    const char *op; /* "SCMP_CMP_EQ", ... (static) */
} vm__sc_arg;

/* Docker's includes/excludes: every field that is set must hold (includes) or any that holds
 * drops the rule (excludes). */
typedef struct vm__sc_filter {
    mar_strv caps;
    mar_strv arches;
    unsigned kernel[2]; /* major, minor; {0, 0}: no kernel condition */
} vm__sc_filter;

typedef struct vm__sc_rule {
    mar_strv names;
    const char *action; /* "SCMP_ACT_ALLOW", ... (static) */
    long errno_ret;     /* -1: none */
    vm__sc_arg args[VM__SC_MAX_ARGS];
    size_t n_args;
    vm__sc_filter inc, exc;
} vm__sc_rule;

typedef struct vm__sc_archmap {
    char *arch;    /* SCMP_ARCH_* of a kernel */
    mar_strv subs; /* its compat ABIs */
} vm__sc_archmap;

struct vm_seccomp {
    bool docker_names;          /* arches in conditions are libseccomp's (x86) rather than OCI's */
    const char *default_action; /* static */
    long default_errno;         /* -1: none */
    mar_strv architectures;     /* a fixed list (Docker's "architectures") */
    vm__sc_archmap *archmap;    /* or one entry per kernel architecture */
    size_t n_archmap;
    mar_strv flags;
    vm__sc_rule *rules;
    size_t n_rules;
};

/* The embedded vm/seccomp/default.txt (generated at build time by vm/seccomp/embed.cmake). */
extern const unsigned char vm__seccomp_default_txt[];
extern const size_t vm__seccomp_default_txt_len;

/* The OCI name of an action, an errno's number, a comparison's OCI name: NULL or -1 when
 * unknown. */
const char *vm__sc_action(const char *oci_name);
const char *vm__sc_op(const char *oci_name);
bool vm__sc_arch_valid(const char *scmp_arch);
bool vm__sc_syscall_name_valid(const char *s);
bool vm__sc_cap_valid(const char *s);

/* Reads mar's format; `what` names the text in messages ("default.txt:12: ..."). Errors:
 * MAR_EUSAGE. */
MAR_MUST_USE int vm__seccomp_parse_text(const char *what, const char *text, size_t len,
                                        vm_seccomp **ret, mar_err **err);
/* Reads a Docker profile (docs/internals/seccomp.md §5). Errors: MAR_EUSAGE (not JSON, a field of
 * the wrong type or value, `architectures` and `archMap` together), MAR_EUNSUPPORTED (a notify
 * listener). */
MAR_MUST_USE int vm__seccomp_parse_docker(const char *what, const char *text, size_t len,
                                          vm_seccomp **ret, mar_err **err);

#endif

/* Finding the Lima and colima configurations on disk (docs/internals/binfmt-and-rosetta.md §9):
 * Lima instances are `<LIMA_HOME>/<name>/lima.yaml` (directories starting with `_` are Lima's own:
 * `_config`,
 * `_cache`); colima profiles `<COLIMA_HOME>/<profile>/colima.yaml`, and the Lima VM colima
 * generated for profile P lives in `<COLIMA_HOME>/_lima/colima[-P]/lima.yaml` ("default" has no
 * suffix). */
#include "vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_CAP (1u << 20)

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Subdirectory names of dir that hold `file`, sorted; `_`-prefixed and hidden ones skipped. */
static void subdirs(const char *dir, const char *file, mar_strv *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || de->d_name[0] == '_') {
            continue;
        }
        _cleanup_free_ char *p = mar_xasprintf("%s/%s/%s", dir, de->d_name, file);
        if (access(p, F_OK) == 0) {
            mar_strv_push(out, de->d_name);
        }
    }
    closedir(d);
    qsort(out->v, out->n, sizeof(out->v[0]), by_name);
}

static vm_conf *load(vm_conf_kind kind, const char *path, const char *name, vm_confs *ret,
                     vm_findings *problems)
{
    mar_buf b = MAR_BUF_INIT(CONF_CAP);
    mar_err *err = NULL;
    vm_conf c;
    int rc = mar_read_file_at(AT_FDCWD, path, CONF_CAP, &b, &err);
    if (rc == 0) {
        rc = vm_conf_parse(kind, path, (const char *)b.data, b.len, &c, &err);
    }
    mar_buf_release(&b);
    if (rc < 0) {
        char subject[160];
        snprintf(subject, sizeof(subject), "%s %s",
                 kind == VM_CONF_LIMA ? "lima instance" : "colima profile", name);
        vm_finding *f = vm_findings_add(problems, VM_PROBLEM, "vm", subject);
        mar_strlcpy(f->message, err->msg, sizeof(f->message));
        mar_strlcpy(f->fix, "fix or remove the file", sizeof(f->fix));
        mar_strlcpy(f->file, path, sizeof(f->file));
        mar_err_free(err);
        return NULL;
    }
    mar_strlcpy(c.name, name, sizeof(c.name));
    c.underlying = -1;
    ret->v = mar_xrealloc(ret->v, (ret->n + 1) * sizeof(*ret->v));
    ret->v[ret->n] = c;
    return &ret->v[ret->n++];
}

void vm_conf_discover(const char *lima_home, const char *colima_home, vm_confs *ret,
                      vm_findings *problems)
{
    memset(ret, 0, sizeof(*ret));
    if (lima_home) {
        mar_strv names = MAR_STRV_INIT;
        subdirs(lima_home, "lima.yaml", &names);
        for (size_t i = 0; i < names.n; i++) {
            _cleanup_free_ char *p = mar_xasprintf("%s/%s/lima.yaml", lima_home, names.v[i]);
            load(VM_CONF_LIMA, p, names.v[i], ret, problems);
        }
        mar_strv_release(&names);
    }
    if (colima_home) {
        mar_strv names = MAR_STRV_INIT;
        subdirs(colima_home, "colima.yaml", &names);
        for (size_t i = 0; i < names.n; i++) {
            _cleanup_free_ char *p = mar_xasprintf("%s/%s/colima.yaml", colima_home, names.v[i]);
            if (!load(VM_CONF_COLIMA, p, names.v[i], ret, problems)) {
                continue;
            }
            size_t profile = ret->n - 1;
            _cleanup_free_ char *inst = strcmp(names.v[i], "default") == 0
                                                ? mar_xstrdup("colima")
                                                : mar_xasprintf("colima-%s", names.v[i]);
            _cleanup_free_ char *lp = mar_xasprintf("%s/_lima/%s/lima.yaml", colima_home, inst);
            if (access(lp, F_OK) == 0 && load(VM_CONF_LIMA, lp, inst, ret, problems)) {
                ret->v[profile].underlying = (long)(ret->n - 1);
            }
        }
        mar_strv_release(&names);
    }
}

void vm_confs_release(vm_confs *c)
{
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

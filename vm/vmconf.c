/* Lima's lima.yaml and colima's colima.yaml, read for the settings that decide how containers of
 * other architectures run (docs/internals/binfmt-and-rosetta.md §9). Only what the findings need is
 * kept, with the line each came from. Parsed by libyaml's document loader, so anchors, flow style
 * and quoting mean what YAML says. */
#include "vm.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
            return yaml_document_get_node(d, p->value);
        }
    }
    return NULL;
}

static const char *str(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static size_t line(yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 0;
}

/* YAML 1.1 booleans as Lima's and colima's Go decoders accept them. */
static void boolean(yaml_node_t *n, vm_conf_int *out)
{
    const char *s = str(n);
    if (!s) {
        return;
    }
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) {
        *out = (vm_conf_int){1, line(n)};
    } else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) {
        *out = (vm_conf_int){0, line(n)};
    }
}

bool vm_conf_size_gib(const char *s, double *ret)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) {
        return false;
    }
    while (*end == ' ') {
        end++;
    }
    /* go-units RAMInBytes: k, m, g, t, p with an optional "i" and "b", all powers of 1024. */
    double mul = 1.0 / (1024.0 * 1024.0 * 1024.0);
    if (*end) {
        static const char units[] = "kmgtp";
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (!u) {
            if (tolower((unsigned char)*end) != 'b' || end[1]) {
                return false;
            }
        } else {
            int exp = (int)(u - units) + 1;
            mul = 1;
            for (int i = 0; i < exp; i++) {
                mul *= 1024;
            }
            mul /= 1024.0 * 1024.0 * 1024.0;
            end++;
            if (tolower((unsigned char)*end) == 'i') {
                end++;
            }
            if (tolower((unsigned char)*end) == 'b') {
                end++;
            }
            if (*end) {
                return false;
            }
        }
    }
    *ret = v * mul;
    return true;
}

static int count(const char *s)
{
    int64_t v = 0;
    return s && mar_parse_i64(s, 0, 4096, &v) ? (int)v : 0;
}

static void copy_str(yaml_node_t *n, char *dst, size_t size, size_t *ret_line)
{
    const char *s = str(n);
    if (s) {
        mar_strlcpy(dst, s, size);
        if (ret_line) {
            *ret_line = line(n);
        }
    }
}

static void lima(yaml_document_t *d, yaml_node_t *root, vm_conf *c)
{
    copy_str(get(d, root, "vmType"), c->vm_type, sizeof(c->vm_type), &c->vm_type_line);
    copy_str(get(d, root, "arch"), c->arch, sizeof(c->arch), &c->arch_line);
    if (strcmp(c->arch, "default") == 0) {
        c->arch[0] = '\0';
    }
    yaml_node_t *ros = get(d, get(d, get(d, root, "vmOpts"), "vz"), "rosetta");
    boolean(get(d, ros, "enabled"), &c->rosetta);
    boolean(get(d, ros, "binfmt"), &c->rosetta_binfmt);
    yaml_node_t *old = get(d, root, "rosetta");
    boolean(get(d, old, "enabled"), &c->rosetta_old);
    boolean(get(d, old, "binfmt"), &c->rosetta_old_binfmt);
    yaml_node_t *mem = get(d, root, "memory");
    double gib;
    if (str(mem) && vm_conf_size_gib(str(mem), &gib)) {
        c->memory_gib = gib;
        c->memory_line = line(mem);
    }
    const char *cpus = str(get(d, root, "cpus"));
    c->cpus = count(cpus);
}

static void colima(yaml_document_t *d, yaml_node_t *root, vm_conf *c)
{
    copy_str(get(d, root, "vmType"), c->vm_type, sizeof(c->vm_type), &c->vm_type_line);
    copy_str(get(d, root, "arch"), c->arch, sizeof(c->arch), &c->arch_line);
    /* colima's arch aliases (cmd/start.go). */
    static const char *const x86[] = {"x86_64", "amd", "amd64", "x86", "x64"};
    static const char *const arm[] = {"aarch64", "arm", "arm64", "m1"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(x86); i++) {
        if (strcasecmp(c->arch, x86[i]) == 0) {
            mar_strlcpy(c->arch, "x86_64", sizeof(c->arch));
        }
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(arm); i++) {
        if (strcasecmp(c->arch, arm[i]) == 0) {
            mar_strlcpy(c->arch, "aarch64", sizeof(c->arch));
        }
    }
    if (strcmp(c->arch, "host") == 0) {
        c->arch[0] = '\0';
    }
    boolean(get(d, root, "rosetta"), &c->rosetta);
    yaml_node_t *mem = get(d, root, "memory");
    if (str(mem)) {
        char *end;
        double v = strtod(str(mem), &end);
        if (end != str(mem) && !*end && v >= 0) {
            c->memory_gib = v;
            c->memory_line = line(mem);
        }
    }
    const char *cpus = str(get(d, root, "cpu"));
    c->cpus = count(cpus);
    copy_str(get(d, root, "runtime"), c->runtime, sizeof(c->runtime), NULL);
}

int vm_conf_parse(vm_conf_kind kind, const char *path, const char *text, size_t len, vm_conf *ret,
                  mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    ret->kind = kind;
    mar_strlcpy(ret->path, path, sizeof(ret->path));
    ret->rosetta = ret->rosetta_binfmt = ret->rosetta_old = ret->rosetta_old_binfmt =
            (vm_conf_int){-1, 0};
    yaml_parser_t p;
    yaml_document_t d;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d)) {
        int rc = mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: %s", path, p.problem_mark.line + 1,
                             p.problem ? p.problem : "not YAML");
        yaml_parser_delete(&p);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&d);
    int rc = 0;
    if (root && root->type != YAML_MAPPING_NODE) {
        rc = mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: not a %s configuration (not a mapping)", path,
                         line(root), kind == VM_CONF_LIMA ? "Lima" : "colima");
    } else if (root) {
        (kind == VM_CONF_LIMA ? lima : colima)(&d, root, ret);
    }
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    return rc;
}

/* The inputs of mar audit: every image reference a project uses, with the file and line it came
 * from. Detected by name and content:
 *
 *   Dockerfile   Dockerfile, Containerfile, *.Dockerfile, Dockerfile.*, or a first instruction
 *                FROM: FROM lines (`--platform=`, `AS stage`), ARG defaults substituted,
 *                stage names and `scratch` not images (Dockerfile reference, "FROM", "ARG").
 *   compose      YAML with a top-level `services` mapping: `image`, `platform`,
 *                `build.platforms` (compose-spec services.md).
 *   Kubernetes   YAML documents with `apiVersion` and `kind`: containers, initContainers and
 *                ephemeralContainers of Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
 *                Job, CronJob, and the items of a List.
 *   list         anything else: one reference per line, # comments.
 *
 * YAML goes through libyaml's document loader, whose node marks give the lines. */
#include "builder.h"

#include <ctype.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

static void add_use(bld_inputs *in, const char *image, const char *file, size_t line,
                    const char *context, const char *pin, bld_input_kind kind)
{
    in->v = mar_xrealloc(in->v, (in->n + 1) * sizeof(*in->v));
    in->v[in->n++] = (bld_input_use){
            .image = mar_xstrdup(image),
            .file = mar_xstrdup(file),
            .line = line,
            .context = mar_xstrdup(context ? context : ""),
            .pin = pin && *pin ? mar_xstrdup(pin) : NULL,
            .pin_line = line,
            .kind = kind,
    };
}

void bld_inputs_release(bld_inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        free(in->v[i].image);
        free(in->v[i].file);
        free(in->v[i].context);
        free(in->v[i].pin);
        free(in->v[i].service);
    }
    free(in->v);
    in->v = NULL;
    in->n = 0;
}

/* ---- YAML ------------------------------------------------------------------------------------ */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0) {
            return yaml_document_get_node(d, p->value);
        }
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void compose(yaml_document_t *d, yaml_node_t *root, const char *file, bld_inputs *in)
{
    yaml_node_t *services = map_get(d, root, "services");
    if (!services || services->type != YAML_MAPPING_NODE) {
        return;
    }
    for (yaml_node_pair_t *p = services->data.mapping.pairs.start;
         p < services->data.mapping.pairs.top; p++) {
        const char *name = scalar(yaml_document_get_node(d, p->key));
        yaml_node_t *svc = yaml_document_get_node(d, p->value);
        yaml_node_t *image = map_get(d, svc, "image");
        if (!name || !scalar(image)) {
            continue; /* built locally with no image name: nothing to look up */
        }
        _cleanup_free_ char *ctx = mar_xasprintf("service %s", name);
        yaml_node_t *platform = map_get(d, svc, "platform");
        add_use(in, scalar(image), file, image->start_mark.line + 1, ctx, scalar(platform),
                BLD_INPUT_COMPOSE);
        in->v[in->n - 1].service = mar_xstrdup(name);
        in->v[in->n - 1].pin_line = platform ? platform->start_mark.line + 1 : 0;
        yaml_node_t *plats = map_get(d, map_get(d, svc, "build"), "platforms");
        if (plats && plats->type == YAML_SEQUENCE_NODE) {
            in->v[in->n - 1].builds_for =
                    (size_t)(plats->data.sequence.items.top - plats->data.sequence.items.start);
        }
    }
}

static void containers(yaml_document_t *d, yaml_node_t *spec, const char *file, const char *owner,
                       bld_inputs *in)
{
    static const char *const lists[] = {"containers", "initContainers", "ephemeralContainers"};
    for (size_t l = 0; l < MAR_ARRAY_SIZE(lists); l++) {
        yaml_node_t *seq = map_get(d, spec, lists[l]);
        if (!seq || seq->type != YAML_SEQUENCE_NODE) {
            continue;
        }
        for (yaml_node_item_t *it = seq->data.sequence.items.start;
             it < seq->data.sequence.items.top; it++) {
            yaml_node_t *c = yaml_document_get_node(d, *it);
            yaml_node_t *image = map_get(d, c, "image");
            if (!scalar(image)) {
                continue;
            }
            const char *cname = scalar(map_get(d, c, "name"));
            _cleanup_free_ char *ctx = mar_xasprintf("%s %s %s", owner,
                                                     l == 0   ? "container"
                                                     : l == 1 ? "init container"
                                                              : "ephemeral container",
                                                     cname ? cname : "?");
            add_use(in, scalar(image), file, image->start_mark.line + 1, ctx, NULL, BLD_INPUT_K8S);
        }
    }
}

static void k8s_object(yaml_document_t *d, yaml_node_t *o, const char *file, bld_inputs *in,
                       int depth)
{
    const char *kind = scalar(map_get(d, o, "kind"));
    if (!kind || depth > 4) {
        return;
    }
    const char *name = scalar(map_get(d, map_get(d, o, "metadata"), "name"));
    _cleanup_free_ char *owner = mar_xasprintf("%s/%s", kind, name ? name : "?");
    yaml_node_t *spec = map_get(d, o, "spec");
    if (strcmp(kind, "List") == 0) {
        yaml_node_t *items = map_get(d, o, "items");
        if (items && items->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = items->data.sequence.items.start;
                 it < items->data.sequence.items.top; it++) {
                k8s_object(d, yaml_document_get_node(d, *it), file, in, depth + 1);
            }
        }
    } else if (strcmp(kind, "Pod") == 0) {
        containers(d, spec, file, owner, in);
    } else if (strcmp(kind, "CronJob") == 0) {
        containers(
                d,
                map_get(d,
                        map_get(d, map_get(d, map_get(d, spec, "jobTemplate"), "spec"), "template"),
                        "spec"),
                file, owner, in);
    } else if (strcmp(kind, "Deployment") == 0 || strcmp(kind, "StatefulSet") == 0 ||
               strcmp(kind, "DaemonSet") == 0 || strcmp(kind, "ReplicaSet") == 0 ||
               strcmp(kind, "Job") == 0) {
        containers(d, map_get(d, map_get(d, spec, "template"), "spec"), file, owner, in);
    }
}

typedef enum { Y_NONE, Y_COMPOSE, Y_K8S } yaml_kind;

/* Parses every document; returns what kind of file it was (Y_NONE: not YAML we know). */
static yaml_kind yaml_input(const mar_buf *b, const char *file, bool yaml_name, bld_inputs *in,
                            mar_err **err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        return Y_NONE;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)b->data, b->len);
    yaml_kind kind = Y_NONE;
    for (int docs = 0; docs < 10000; docs++) {
        yaml_document_t d;
        if (!yaml_parser_load(&p, &d)) {
            /* A list is not YAML; a file named .yaml or already read as YAML is. */
            if (kind != Y_NONE || yaml_name) {
                mar_err_set(err, MAR_EUSAGE, 0, "%s:%zu: %s", file, p.problem_mark.line + 1,
                            p.problem ? p.problem : "bad YAML");
            }
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&d);
        if (!root) {
            yaml_document_delete(&d);
            break;
        }
        if (map_get(&d, root, "services")) {
            kind = Y_COMPOSE;
            compose(&d, root, file, in);
        } else if (map_get(&d, root, "apiVersion") && map_get(&d, root, "kind")) {
            kind = Y_K8S;
            k8s_object(&d, root, file, in, 0);
        }
        yaml_document_delete(&d);
    }
    yaml_parser_delete(&p);
    return kind;
}

/* ---- Dockerfiles ----------------------------------------------------------------------------- */

/* ${VAR}, ${VAR:-default}, $VAR from the ARGs seen before the first FROM (and the automatic
 * platform ARGs, which stay unresolved). */
static char *substitute(const char *s, const mar_strv *args)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (const char *p = s; *p;) {
        if (*p != '$') {
            mar_buf_xappend(&b, p++, 1);
            continue;
        }
        bool braced = p[1] == '{';
        const char *n = p + (braced ? 2 : 1);
        size_t nl = 0;
        while (isalnum((unsigned char)n[nl]) || n[nl] == '_') {
            nl++;
        }
        const char *dflt = NULL;
        size_t dl = 0;
        const char *end = n + nl;
        if (braced) {
            if (end[0] == ':' && end[1] == '-') {
                dflt = end + 2;
                const char *close = strchr(dflt, '}');
                dl = close ? (size_t)(close - dflt) : strlen(dflt);
                end = dflt + dl;
            }
            if (*end == '}') {
                end++;
            }
        }
        const char *val = NULL;
        for (size_t i = 0; i < args->n; i++) {
            const char *eq = strchr(args->v[i], '=');
            if (eq && (size_t)(eq - args->v[i]) == nl && strncmp(args->v[i], n, nl) == 0) {
                val = eq + 1;
            }
        }
        if (val && *val) {
            mar_buf_xputs(&b, val);
        } else if (dflt) {
            mar_buf_xappend(&b, dflt, dl);
        } else {
            mar_buf_xappend(&b, p, (size_t)(end - p)); /* unknown: left as written */
        }
        p = end;
    }
    return mar_buf_detach(&b, NULL);
}

static void dockerfile(const mar_buf *b, const char *file, bld_inputs *in)
{
    mar_strv args = MAR_STRV_INIT, stages = MAR_STRV_INIT;
    bool seen_from = false;
    size_t lineno = 0;
    mar_buf logical = MAR_BUF_INIT(MAR_BUF_NOCAP);
    size_t start_line = 0;
    _cleanup_free_ char *copy = mar_xstrdup(b->data);
    for (char *line = copy, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        lineno++;
        char *t = line;
        while (*t == ' ' || *t == '\t') {
            t++;
        }
        if (*t == '#' && logical.len == 0) {
            continue;
        }
        if (logical.len == 0) {
            start_line = lineno;
        }
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == '\r' || t[tl - 1] == ' ')) {
            t[--tl] = '\0';
        }
        if (tl && t[tl - 1] == '\\') {
            t[tl - 1] = ' ';
            mar_buf_xputs(&logical, t);
            continue;
        }
        mar_buf_xputs(&logical, t);
        char *ins = logical.data;
        /* Instruction words are case-insensitive. */
        if (strncasecmp(ins, "ARG ", 4) == 0 && !seen_from) {
            char *a = ins + 4;
            while (*a == ' ') {
                a++;
            }
            if (strchr(a, '=')) {
                mar_strv_push(&args, a);
            }
        } else if (strncasecmp(ins, "FROM ", 5) == 0) {
            seen_from = true;
            char *w[8];
            size_t nw = 0;
            for (char *tok = ins + 5; *tok && nw < MAR_ARRAY_SIZE(w);) {
                while (*tok == ' ' || *tok == '\t') {
                    *tok++ = '\0';
                }
                if (!*tok) {
                    break;
                }
                w[nw++] = tok;
                while (*tok && *tok != ' ' && *tok != '\t') {
                    tok++;
                }
            }
            const char *pin = NULL, *image = NULL, *stage = NULL;
            for (size_t i = 0; i < nw; i++) {
                if (strncmp(w[i], "--platform=", 11) == 0) {
                    pin = w[i] + 11;
                } else if (!image && w[i][0] != '-') {
                    image = w[i];
                } else if (image && strcasecmp(w[i], "AS") == 0 && i + 1 < nw) {
                    stage = w[i + 1];
                }
            }
            if (image) {
                _cleanup_free_ char *img = substitute(image, &args);
                _cleanup_free_ char *pn = pin ? substitute(pin, &args) : NULL;
                bool is_stage = mar_strv_contains(&stages, img);
                if (!is_stage && strcmp(img, "scratch") != 0 && !strchr(img, '$')) {
                    _cleanup_free_ char *ctx =
                            stage ? mar_xasprintf("FROM (stage %s)", stage) : mar_xstrdup("FROM");
                    /* $BUILDPLATFORM and friends are not a pin of the final image. */
                    add_use(in, img, file, start_line, ctx, pn && !strchr(pn, '$') ? pn : NULL,
                            BLD_INPUT_DOCKERFILE);
                }
            }
            if (stage) {
                mar_strv_push(&stages, stage);
            }
        }
        mar_buf_truncate(&logical, 0);
    }
    mar_buf_release(&logical);
    mar_strv_release(&args);
    mar_strv_release(&stages);
}

static bool dockerfile_name(const char *file)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    return strcmp(base, "Dockerfile") == 0 || strcmp(base, "Containerfile") == 0 ||
           mar_str_startswith(base, "Dockerfile.") || mar_str_endswith(base, ".Dockerfile") ||
           mar_str_endswith(base, ".dockerfile");
}

/* The first instruction, skipping comments, blank lines and parser directives. */
static bool starts_like_dockerfile(const char *s)
{
    for (const char *l = s; l && *l;) {
        while (*l == ' ' || *l == '\t') {
            l++;
        }
        if (*l == '\n' || *l == '\r') {
            l++;
            continue;
        }
        if (*l == '#') {
            l = strchr(l, '\n');
            continue;
        }
        return strncasecmp(l, "FROM ", 5) == 0 || strncasecmp(l, "ARG ", 4) == 0;
    }
    return false;
}

static void plain_list(const mar_buf *b, const char *file, bld_inputs *in)
{
    size_t lineno = 0;
    _cleanup_free_ char *copy = mar_xstrdup(b->data);
    for (char *l = copy, *next; l; l = next) {
        next = strchr(l, '\n');
        if (next) {
            *next++ = '\0';
        }
        lineno++;
        char *hash = strchr(l, '#');
        if (hash) {
            *hash = '\0';
        }
        while (*l == ' ' || *l == '\t') {
            l++;
        }
        size_t n = strlen(l);
        while (n && isspace((unsigned char)l[n - 1])) {
            l[--n] = '\0';
        }
        if (*l) {
            add_use(in, l, file, lineno, "list", NULL, BLD_INPUT_LIST);
        }
    }
}

/* ---- detection ------------------------------------------------------------------------------- */

MAR_MUST_USE static int yaml_or_list(const mar_buf *b, const char *name, bld_inputs *in,
                                     mar_err **err)
{
    size_t before = in->n;
    mar_err *ye = NULL;
    bool yaml_name = mar_str_endswith(name, ".yaml") || mar_str_endswith(name, ".yml");
    yaml_kind k = yaml_input(b, name, yaml_name, in, &ye);
    if (ye) {
        *err = ye;
        return -mar_err_code(ye);
    }
    if (k == Y_NONE && in->n == before) {
        plain_list(b, name, in);
    }
    return 0;
}

MAR_MUST_USE static int parse(const mar_buf *b, const char *name, bld_inputs *in, mar_err **err)
{
    if (dockerfile_name(name) || starts_like_dockerfile(b->data)) {
        dockerfile(b, name, in);
        return 0;
    }
    return yaml_or_list(b, name, in, err);
}

int bld_inputs_parse_yaml_or_list(const char *name, const char *data, size_t len, bld_inputs *in,
                                  mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xappend(&b, data, len);
    int rc = yaml_or_list(&b, name, in, err);
    mar_buf_release(&b);
    return rc;
}

int bld_inputs_parse(const char *name, const char *data, size_t len, bld_inputs *in, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    mar_buf_xappend(&b, data, len);
    int rc = parse(&b, name, in, err);
    mar_buf_release(&b);
    return rc;
}

int bld_inputs_read(const char *path, bld_inputs *in, mar_err **err)
{
    mar_buf b = MAR_BUF_INIT(BLD_INPUT_CAP);
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    int rc = strcmp(path, "-") == 0 ? mar_read_stream(STDIN_FILENO, name, BLD_INPUT_CAP, &b, err)
                                    : mar_read_file_at(AT_FDCWD, path, BLD_INPUT_CAP, &b, err);
    if (rc < 0) {
        return mar_err_wrap(err, "audit input");
    }
    rc = parse(&b, name, in, err);
    mar_buf_release(&b);
    return rc;
}

/* The truth inside layers (inspect --deep): each layer is read once, keeping for every entry its
 * kind, link and, for regular files, what the first bytes say (ELF identity or a script's
 * interpreter); the layers are then merged with OCI whiteout semantics (image-spec layer.md) into
 * the final filesystem, in which the entrypoint is resolved through the image's own symlinks and
 * PATH, and the binaries are counted by architecture. */
#include "oci.h"

#include <string.h>

#define HEAD_BYTES (16u << 10) /* headers, PT_INTERP and notes of real binaries lie within */

static void node_release(oci_scan_node *n)
{
    free(n->path);
    free(n->link);
    free(n->elf);
    free(n->shebang);
}

oci_scan_layer *oci_scan_layer_free(oci_scan_layer *l)
{
    if (!l) {
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        node_release(&l->v[i]);
    }
    free(l->v);
    free(l);
    return NULL;
}

static oci_scan_node *push(oci_scan_layer *l)
{
    if (l->n == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 256;
        l->v = mar_xrealloc(l->v, l->alloc * sizeof(*l->v));
    }
    oci_scan_node *n = &l->v[l->n++];
    memset(n, 0, sizeof(*n));
    return n;
}

/* "#!/usr/bin/env python3" -> "/usr/bin/env" (the interpreter the kernel runs). */
static char *shebang_of(const unsigned char *p, size_t n)
{
    if (n < 3 || p[0] != '#' || p[1] != '!') {
        return NULL;
    }
    size_t i = 2;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    size_t s = i;
    while (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r' && p[i] != 0) {
        i++;
    }
    if (i == s || i - s > 255) {
        return NULL;
    }
    return mar_xstrndup((const char *)p + s, i - s);
}

int oci_scan_layer_read(int fd, const oci_layer_limits *lim, oci_scan_layer **ret, mar_err **err)
{
    _cleanup_layer_ oci_layer_reader *r = NULL;
    int rc = oci_layer_open(fd, lim, &r, err);
    if (rc < 0) {
        return rc;
    }
    oci_scan_layer *l = mar_xcalloc(1, sizeof(*l));
    l->codec = oci_layer_codec(r);
    unsigned char *head = mar_xmalloc(HEAD_BYTES);
    const oci_layer_entry *e;
    while ((rc = oci_layer_next(r, &e, err)) == 1) {
        oci_scan_node *n = push(l);
        n->kind = e->kind;
        n->path = mar_xstrdup(e->path);
        n->link = e->link ? mar_xstrdup(e->link) : NULL;
        n->mode = e->mode;
        if (e->kind != OCI_ENTRY_FILE || e->size <= 0) {
            continue;
        }
        size_t got = 0;
        while (got < HEAD_BYTES) {
            ssize_t k = oci_layer_read(r, head + got, HEAD_BYTES - got, err);
            if (k < 0) {
                rc = (int)k;
                goto out;
            }
            if (k == 0) {
                break;
            }
            got += (size_t)k;
        }
        oci_elf_info info;
        oci_elf_parse(head, got, &info);
        if (info.is_elf) {
            n->elf = mar_xmalloc(sizeof(*n->elf));
            *n->elf = info;
        } else {
            n->shebang = shebang_of(head, got < 512 ? got : 512);
        }
    }
    if (rc == 0) {
        rc = oci_layer_finish(r, &l->diff_id, &l->size, err);
    }
out:
    free(head);
    if (rc < 0) {
        oci_scan_layer_free(l);
        return rc;
    }
    *ret = l;
    return 0;
}

/* ---- the merged view --------------------------------------------------------------------------
 */

static void remove_subtree(mar_map *m, const char *dir, bool include_dir)
{
    size_t dl = strlen(dir);
    size_t pos = 0;
    const char *k;
    void *v;
    mar_strv doomed = MAR_STRV_INIT;
    while (mar_map_next(m, &pos, &k, &v)) {
        if ((include_dir && strcmp(k, dir) == 0) ||
            (dl == 0 || (strncmp(k, dir, dl) == 0 && k[dl] == '/'))) {
            mar_strv_push(&doomed, k);
        }
    }
    for (size_t i = 0; i < doomed.n; i++) {
        mar_map_del(m, doomed.v[i]);
    }
    mar_strv_release(&doomed);
}

void oci_scan_view_build(oci_scan_layer *const *layers, size_t n, oci_scan_view *ret)
{
    memset(ret, 0, sizeof(*ret));
    for (size_t li = 0; li < n; li++) {
        const oci_scan_layer *l = layers[li];
        /* Whiteouts and opaque markers act on lower layers only, before this layer's entries
         * whatever their order in the tar (image-spec layer.md "Whiteouts"). */
        for (size_t i = 0; i < l->n; i++) {
            const oci_scan_node *e = &l->v[i];
            if (e->kind == OCI_ENTRY_OPAQUE) {
                remove_subtree(&ret->nodes, e->path, false);
            } else if (e->kind == OCI_ENTRY_WHITEOUT) {
                remove_subtree(&ret->nodes, e->path, true);
            }
        }
        for (size_t i = 0; i < l->n; i++) {
            const oci_scan_node *e = &l->v[i];
            const oci_scan_node *old = mar_map_get(&ret->nodes, e->path);
            switch (e->kind) {
            case OCI_ENTRY_WHITEOUT:
            case OCI_ENTRY_OPAQUE:
            case OCI_ENTRY_AUFS_META:
                break;
            case OCI_ENTRY_HARDLINK: {
                /* A hard link is the same file as its target. */
                const oci_scan_node *t = mar_map_get(&ret->nodes, e->link);
                if (t && t->kind != OCI_ENTRY_DIR) {
                    mar_map_set(&ret->nodes, e->path, (void *)t);
                }
                break;
            }
            case OCI_ENTRY_DIR:
                mar_map_set(&ret->nodes, e->path, (void *)e);
                break;
            default:
                if (old && old->kind == OCI_ENTRY_DIR) {
                    remove_subtree(&ret->nodes, e->path, false);
                }
                mar_map_set(&ret->nodes, e->path, (void *)e);
                break;
            }
        }
    }
}

void oci_scan_view_release(oci_scan_view *v)
{
    mar_map_release(&v->nodes);
}

/* Joins and cleans a path inside the image ("/" is the image root). */
static void join_clean(const char *base, const char *rel, char *out, size_t n)
{
    char tmp[2 * OCI_PATH_MAX + 2];
    if (rel[0] == '/') {
        snprintf(tmp, sizeof(tmp), "%s", rel);
    } else {
        snprintf(tmp, sizeof(tmp), "%s/%s", base, rel);
    }
    /* Lexical clean with ".." clamped at the root, as the kernel resolves inside a chroot. */
    size_t ol = 0;
    const char *p = tmp, *comp;
    size_t cl;
    mar_path_comp kind;
    out[0] = '\0';
    while ((kind = mar_path_next(&p, &comp, &cl)) != MAR_PATH_END) {
        if (kind == MAR_PATH_DOTDOT) {
            ol = mar_path_dirlen(out, ol);
            out[ol] = '\0';
            continue;
        }
        if (ol + cl + 2 >= n) {
            break;
        }
        if (ol) {
            out[ol++] = '/';
        }
        memcpy(out + ol, comp, cl);
        ol += cl;
        out[ol] = '\0';
    }
}

const oci_scan_node *oci_scan_resolve(const oci_scan_view *v, const char *path, char *resolved,
                                      size_t n)
{
    char cur[OCI_PATH_MAX + 1];
    join_clean("", path, cur, sizeof(cur));
    for (int hops = 0; hops <= MAR_SYMLINK_HOPS; hops++) {
        /* Walk the components; the first symlink met is replaced by its target. */
        char prefix[OCI_PATH_MAX + 1] = "";
        size_t pl = 0;
        const char *p = cur, *comp;
        size_t cl;
        bool restarted = false;
        /* cur is clean: every component is a name. */
        while (mar_path_next(&p, &comp, &cl) != MAR_PATH_END) {
            if (pl + cl + 2 >= sizeof(prefix)) {
                return NULL;
            }
            if (pl) {
                prefix[pl++] = '/';
            }
            memcpy(prefix + pl, comp, cl);
            pl += cl;
            prefix[pl] = '\0';
            const char *rest = p;
            const oci_scan_node *node = mar_map_get(&v->nodes, prefix);
            if (node && node->kind == OCI_ENTRY_SYMLINK && node->link) {
                char dir[OCI_PATH_MAX + 1];
                snprintf(dir, sizeof(dir), "%.*s", (int)mar_path_dirlen(prefix, pl), prefix);
                char target[2 * OCI_PATH_MAX + 2];
                join_clean(dir, node->link, target, sizeof(target));
                char next[3 * OCI_PATH_MAX + 8];
                snprintf(next, sizeof(next), "%s%s%s", target, *rest ? "/" : "", rest);
                join_clean("", next, cur, sizeof(cur));
                restarted = true;
                break;
            }
        }
        if (!restarted) {
            if (resolved) {
                snprintf(resolved, n, "/%s", cur);
            }
            return mar_map_get(&v->nodes, cur);
        }
    }
    return NULL; /* a symlink loop */
}

/* ---- the summary -------------------------------------------------------------------------------
 */

static void count_arch(oci_elf_summary *s, const char *arch)
{
    for (size_t i = 0; i < s->n_counts; i++) {
        if (strcmp(s->counts[i].arch, arch) == 0) {
            s->counts[i].n++;
            return;
        }
    }
    if (s->n_counts < MAR_ARRAY_SIZE(s->counts)) {
        mar_strlcpy(s->counts[s->n_counts].arch, arch, sizeof(s->counts[0].arch));
        s->counts[s->n_counts++].n = 1;
    }
}

static const char *env_path(const oci_config *cfg)
{
    for (size_t i = 0; cfg && i < cfg->env.n; i++) {
        if (mar_str_startswith(cfg->env.v[i], "PATH=")) {
            return cfg->env.v[i] + 5;
        }
    }
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

static const oci_scan_node *find_program(const oci_scan_view *v, const oci_config *cfg,
                                         const char *argv0, char *resolved, size_t n)
{
    if (strchr(argv0, '/')) {
        char p[OCI_PATH_MAX + 1];
        join_clean(cfg && cfg->working_dir ? cfg->working_dir : "/", argv0, p, sizeof(p));
        return oci_scan_resolve(v, p, resolved, n);
    }
    const char *path = env_path(cfg);
    while (*path) {
        const char *e = strchr(path, ':');
        size_t l = e ? (size_t)(e - path) : strlen(path);
        char cand[OCI_PATH_MAX + 1];
        snprintf(cand, sizeof(cand), "%.*s/%s", (int)l, path, argv0);
        const oci_scan_node *node = oci_scan_resolve(v, cand, resolved, n);
        if (node && node->kind == OCI_ENTRY_FILE) {
            return node;
        }
        path = e ? e + 1 : path + l;
    }
    return NULL;
}

static void entrypoint(const oci_scan_view *v, const oci_config *cfg, oci_elf_summary *s)
{
    const char *argv0 = NULL;
    if (cfg && cfg->entrypoint.n) {
        argv0 = cfg->entrypoint.v[0];
    } else if (cfg && cfg->cmd.n) {
        argv0 = cfg->cmd.v[0];
    }
    if (!argv0 || !*argv0) {
        return;
    }
    s->has_entrypoint = true;
    mar_strlcpy(s->ep_path, argv0, sizeof(s->ep_path));
    const oci_scan_node *node = find_program(v, cfg, argv0, s->ep_resolved, sizeof(s->ep_resolved));
    if (node && !node->elf && node->shebang) {
        /* A script: what runs is its interpreter. */
        mar_strlcpy(s->ep_script, s->ep_resolved, sizeof(s->ep_script));
        node = find_program(v, cfg, node->shebang, s->ep_resolved, sizeof(s->ep_resolved));
    }
    if (!node) {
        s->ep_resolved[0] = '\0';
        return;
    }
    s->ep_found = true;
    if (node->elf) {
        mar_strlcpy(s->ep_arch, node->elf->arch, sizeof(s->ep_arch));
        s->ep_isa_level = node->elf->x86_isa_level;
        if (node->elf->dynamic && node->elf->interp[0]) {
            mar_strlcpy(s->ep_interp, node->elf->interp, sizeof(s->ep_interp));
            const oci_scan_node *ld = oci_scan_resolve(v, node->elf->interp, NULL, 0);
            s->ep_interp_missing = !ld;
        }
    }
}

void oci_elf_summarize(const oci_scan_view *v, const oci_config *cfg, const char *declared,
                       oci_elf_summary *s)
{
    memset(s, 0, sizeof(*s));
    mar_strv paths = MAR_STRV_INIT;
    size_t pos = 0;
    const char *k;
    void *val;
    while (mar_map_next(&v->nodes, &pos, &k, &val)) {
        const oci_scan_node *node = val;
        if (node->kind == OCI_ENTRY_FILE && node->elf && node->elf->arch[0]) {
            mar_strv_push(&paths, k);
        }
    }
    /* Sorted, so that examples are stable from run to run. */
    mar_strv_sort(&paths);
    for (size_t i = 0; i < paths.n; i++) {
        const oci_scan_node *node = mar_map_get(&v->nodes, paths.v[i]);
        const oci_elf_info *e = node->elf;
        s->n_elf++;
        count_arch(s, e->arch);
        if (strcmp(e->arch, declared) != 0) {
            s->n_foreign++;
            if (s->n_examples < MAR_ARRAY_SIZE(s->examples)) {
                snprintf(s->examples[s->n_examples].path, sizeof(s->examples[0].path), "/%s",
                         paths.v[i]);
                mar_strlcpy(s->examples[s->n_examples].arch, e->arch, sizeof(s->examples[0].arch));
                s->n_examples++;
            }
        }
        if (e->x86_isa_level > s->max_isa_level) {
            s->max_isa_level = e->x86_isa_level;
            snprintf(s->isa_example, sizeof(s->isa_example), "/%s", paths.v[i]);
        }
        if (e->x86_isa_level >= 3) {
            s->n_isa_v3plus++;
        }
        if (e->dynamic && e->interp[0] && !oci_scan_resolve(v, e->interp, NULL, 0)) {
            if (s->n_missing_loader++ == 0) {
                snprintf(s->loader_example, sizeof(s->loader_example), "/%s", paths.v[i]);
                mar_strlcpy(s->loader_missing, e->interp, sizeof(s->loader_missing));
            }
        }
    }
    mar_strv_release(&paths);
    size_t best = 0;
    for (size_t i = 0; i < s->n_counts; i++) {
        if (s->counts[i].n > best) {
            best = s->counts[i].n;
            mar_strlcpy(s->majority_arch, s->counts[i].arch, sizeof(s->majority_arch));
        }
    }
    entrypoint(v, cfg, s);
    bool ep_foreign = s->ep_arch[0] && strcmp(s->ep_arch, declared) != 0;
    if (s->n_elf == 0) {
        mar_strlcpy(s->verdict, "no-elf", sizeof(s->verdict));
    } else if (s->n_foreign == 0) {
        mar_strlcpy(s->verdict, "consistent", sizeof(s->verdict));
    } else if (s->n_foreign * 2 > s->n_elf || ep_foreign) {
        mar_strlcpy(s->verdict, "mislabeled", sizeof(s->verdict));
    } else {
        mar_strlcpy(s->verdict, "mixed", sizeof(s->verdict));
    }
}

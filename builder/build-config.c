/* The instructions that change only the image config (docs/internals/build.md §4), with the
 * fields of image-spec config.md
 * (https://github.com/opencontainers/image-spec/blob/main/config.md) and the semantics of the
 * Dockerfile reference (https://docs.docker.com/reference/dockerfile/). */
#include "build-internal.h"

#include <string.h>
#include <time.h>

int bld__expand(const bld__ctx *c, bld__stage *st, const bld_instr *in, const char *raw, char **ret,
                mar_err **err)
{
    if (bld_expand_word(raw, c->df->escape, 0, bld_scope_lookup, st->scope, ret, NULL, err) < 0) {
        return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
    }
    return 0;
}

void bld__created(const bld__ctx *c, char *buf, size_t n)
{
    time_t t = c->o->has_epoch ? (time_t)c->o->epoch : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void bld__history(const bld__ctx *c, bld__image *im, const char *created_by, bool empty_layer)
{
    json_t *h = json_object_get(im->config, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(im->config, "history", h);
    }
    char created[40];
    bld__created(c, created, sizeof(created));
    json_t *e = json_pack("{s:s, s:s, s:s}", "created", created, "created_by", created_by,
                          "comment", "mar build");
    if (empty_layer) {
        json_object_set_new(e, "empty_layer", json_true());
    }
    json_array_append_new(h, e);
}

static json_t *strv_json(const mar_strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++) {
        json_array_append_new(a, json_string(v->v[i]));
    }
    return a;
}

/* Env holds K=V strings; a key set again replaces its entry in place. */
static void set_env(json_t *cfg, const char *key, const char *value)
{
    json_t *env = json_object_get(cfg, "Env");
    if (!json_is_array(env)) {
        env = json_array();
        json_object_set_new(cfg, "Env", env);
    }
    size_t kl = strlen(key), i;
    json_t *v;
    _cleanup_free_ char *kv = mar_xasprintf("%s=%s", key, value);
    json_array_foreach(env, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strncmp(s, key, kl) == 0 && s[kl] == '=') {
            json_array_set_new(env, i, json_string(kv));
            return;
        }
    }
    json_array_append_new(env, json_string(kv));
}

static json_t *object_field(json_t *cfg, const char *key)
{
    json_t *o = json_object_get(cfg, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(cfg, key, o);
    }
    return o;
}

/* CMD, ENTRYPOINT and HEALTHCHECK CMD: the JSON array, or the stage's SHELL and the line. */
static json_t *command_json(const bld__stage *st, const bld_instr *in)
{
    if (in->json) {
        return strv_json(&in->args);
    }
    json_t *a = strv_json(&st->img.shell);
    json_array_append_new(a, json_string(in->args.n ? in->args.v[0] : ""));
    return a;
}

static int healthcheck(bld__stage *st, const bld_instr *in, json_t *cfg)
{
    json_t *h = json_object();
    if (in->health.none) {
        json_object_set_new(h, "Test", json_pack("[s]", "NONE"));
    } else {
        json_t *t;
        if (in->json) {
            t = json_array();
            json_array_append_new(t, json_string("CMD"));
            for (size_t i = 0; i < in->args.n; i++) {
                json_array_append_new(t, json_string(in->args.v[i]));
            }
        } else {
            t = json_pack("[s, s]", "CMD-SHELL", in->args.n ? in->args.v[0] : "");
        }
        json_object_set_new(h, "Test", t);
        const struct {
            const char *key;
            int64_t v;
        } d[] = {{"Interval", in->health.interval_ns},
                 {"Timeout", in->health.timeout_ns},
                 {"StartPeriod", in->health.start_period_ns},
                 {"StartInterval", in->health.start_interval_ns}};
        for (size_t i = 0; i < MAR_ARRAY_SIZE(d); i++) {
            if (d[i].v) {
                json_object_set_new(h, d[i].key, json_integer(d[i].v));
            }
        }
        if (in->health.retries) {
            json_object_set_new(h, "Retries", json_integer(in->health.retries));
        }
    }
    (void)st;
    json_object_set_new(cfg, "Healthcheck", h);
    return 0;
}

int bld__config_instr(bld__ctx *c, bld__stage *st, const bld_instr *in, mar_err **err)
{
    json_t *cfg = bld__cfg(&st->img);
    switch (in->kind) {
    case BLD_ENV:
    case BLD_LABEL:
        for (size_t i = 0; i < in->n_kvs; i++) {
            _cleanup_free_ char *k = NULL, *v = NULL;
            if (bld__expand(c, st, in, in->kvs[i].key, &k, err) < 0 ||
                bld__expand(c, st, in, in->kvs[i].value ? in->kvs[i].value : "", &v, err) < 0) {
                return -MAR_EUSAGE;
            }
            if (in->kind == BLD_ENV) {
                bld_scope_env(st->scope, k, v);
                set_env(cfg, k, v);
            } else {
                json_object_set_new(object_field(cfg, "Labels"), k, json_string(v));
            }
        }
        return 0;
    case BLD_WORKDIR: {
        _cleanup_free_ char *w = NULL;
        if (bld__expand(c, st, in, in->args.v[0], &w, err) < 0) {
            return -MAR_EUSAGE;
        }
        const char *cur = json_string_value(json_object_get(cfg, "WorkingDir"));
        _cleanup_free_ char *joined =
                w[0] == '/' ? mar_xstrdup(w) : mar_xasprintf("%s/%s", cur && *cur ? cur : "", w);
        json_object_set_new(cfg, "WorkingDir", json_string(joined));
        return 0;
    }
    case BLD_USER:
    case BLD_STOPSIGNAL: {
        _cleanup_free_ char *v = NULL;
        if (bld__expand(c, st, in, in->args.v[0], &v, err) < 0) {
            return -MAR_EUSAGE;
        }
        json_object_set_new(cfg, in->kind == BLD_USER ? "User" : "StopSignal", json_string(v));
        return 0;
    }
    case BLD_CMD:
        json_object_set_new(cfg, "Cmd", command_json(st, in));
        st->img.cmd_set = true;
        return 0;
    case BLD_ENTRYPOINT:
        json_object_set_new(cfg, "Entrypoint", command_json(st, in));
        if (!st->img.cmd_set) {
            /* An ENTRYPOINT drops the base image's CMD (Dockerfile reference, "Understand how
             * CMD and ENTRYPOINT interact"). */
            json_object_del(cfg, "Cmd");
        }
        return 0;
    case BLD_EXPOSE: {
        json_t *ports = object_field(cfg, "ExposedPorts");
        for (size_t i = 0; i < in->args.n; i++) {
            _cleanup_strv_ mar_strv words = MAR_STRV_INIT;
            if (bld_expand_words(in->args.v[i], c->df->escape, 0, bld_scope_lookup, st->scope,
                                 &words, NULL, err) < 0) {
                return mar_err_wrap(err, "%s:%u", c->df->filename, in->line);
            }
            for (size_t k = 0; k < words.n; k++) {
                _cleanup_free_ char *p = strchr(words.v[k], '/')
                                                 ? mar_xstrdup(words.v[k])
                                                 : mar_xasprintf("%s/tcp", words.v[k]);
                json_object_set_new(ports, p, json_object());
            }
        }
        return 0;
    }
    case BLD_VOLUME: {
        json_t *vols = object_field(cfg, "Volumes");
        for (size_t i = 0; i < in->args.n; i++) {
            _cleanup_free_ char *v = NULL;
            if (bld__expand(c, st, in, in->args.v[i], &v, err) < 0) {
                return -MAR_EUSAGE;
            }
            if (*v) {
                json_object_set_new(vols, v, json_object());
            }
        }
        return 0;
    }
    case BLD_HEALTHCHECK:
        return healthcheck(st, in, cfg);
    case BLD_SHELL:
        mar_strv_release(&st->img.shell);
        for (size_t i = 0; i < in->args.n; i++) {
            mar_strv_push(&st->img.shell, in->args.v[i]);
        }
        json_object_set_new(cfg, "Shell", strv_json(&in->args));
        return 0;
    case BLD_ONBUILD: {
        json_t *ob = json_object_get(cfg, "OnBuild");
        if (!json_is_array(ob)) {
            ob = json_array();
            json_object_set_new(cfg, "OnBuild", ob);
        }
        json_array_append_new(ob, json_string(in->trigger_text));
        return 0;
    }
    case BLD_MAINTAINER:
        json_object_set_new(st->img.config, "author", json_string(in->args.v[0]));
        return 0;
    default:
        return mar_err_set(err, MAR_EUSAGE, 0, "%s:%u: %s is not a config instruction",
                           c->df->filename, in->line, bld_kind_name(in->kind));
    }
}

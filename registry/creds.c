/* Credentials from Docker's config.json and credential helpers (docs/internals/registry-protocol.md
 * §6; docker/docker-credential-helpers). Secrets never reach messages, logs or argv; helper stdout
 * is never echoed (docs/internals/unpack-security.md §8). */
#include "registry-internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>

#include <openssl/evp.h>

#define HUB_KEY           "https://index.docker.io/v1/"
#define HELPER_TIMEOUT_MS 30000

void reg__creds_release(reg_creds *cr)
{
    free(cr->username);
    mar_secret_free(cr->password);
    mar_secret_free(cr->identity_token);
    mar_secret_free(cr->registry_token);
    memset(cr, 0, sizeof(*cr));
}

bool reg__creds_any(const reg_creds *cr)
{
    return (cr->username && cr->password) || cr->identity_token || cr->registry_token;
}

static bool is_hub(const char *host)
{
    return strcmp(host, "registry-1.docker.io") == 0 || strcmp(host, "docker.io") == 0 ||
           strcmp(host, "index.docker.io") == 0;
}

/* A config key ("https://host:port/v1/", "host") reduced to host[:port]. */
static void key_host(const char *key, char *buf, size_t n)
{
    const char *s = key;
    if (mar_str_startswith(s, "https://")) {
        s += 8;
    } else if (mar_str_startswith(s, "http://")) {
        s += 7;
    }
    size_t l = strcspn(s, "/");
    snprintf(buf, n, "%.*s", (int)l, s);
}

static bool key_matches(const char *key, const char *host)
{
    char kh[256];
    key_host(key, kh, sizeof(kh));
    if (is_hub(host)) {
        return is_hub(kh);
    }
    return strcmp(kh, host) == 0;
}

static void load_config(reg_client *c)
{
    if (c->docker_config_loaded) {
        return;
    }
    c->docker_config_loaded = true;
    _cleanup_free_ char *path = NULL;
    if (c->opts.docker_config) {
        path = mar_xstrdup(c->opts.docker_config);
    } else if (getenv("DOCKER_CONFIG") && *getenv("DOCKER_CONFIG")) {
        path = mar_xasprintf("%s/config.json", getenv("DOCKER_CONFIG"));
    } else if (getenv("HOME") && *getenv("HOME")) {
        path = mar_xasprintf("%s/.docker/config.json", getenv("HOME"));
    } else {
        return;
    }
    mar_buf b = MAR_BUF_INIT(MAR_CAP_DOCKER_CONFIG);
    mar_err *e = NULL;
    if (mar_read_file_at(AT_FDCWD, path, MAR_CAP_DOCKER_CONFIG, &b, &e) < 0) {
        if (mar_err_code(e) != MAR_ENOTFOUND) {
            mar_diag_warn("%s, ignoring", e->msg);
        }
        mar_err_free(e);
        return;
    }
    c->docker_config = reg__creds_config_parse(b.data, b.len, path);
    mar_buf_release_secret(&b);
    if (c->docker_config) {
        c->docker_config_path = TAKE_PTR(path);
    }
}

json_t *reg__creds_config_parse(const void *data, size_t len, const char *path)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(cfg)) {
        mar_diag_warn("cannot parse '%s' at %d:%d, ignoring", path, jerr.line, jerr.column);
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

static void hold_secrets(void)
{
    /* No core file may carry a credential (docs/internals/unpack-security.md §8). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static bool helper_name_ok(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return false;
        }
    }
    return true;
}

/* Runs `docker-credential-<helper> get`. Returns 1 when credentials were found, 0 when the
 * helper has none, -1 on failure (warned). */
static int run_helper(const char *helper, const char *host, reg_creds *ret)
{
    if (!helper_name_ok(helper)) {
        mar_diag_warn("credential helper name '%.60s' is invalid, ignoring", helper);
        return -1;
    }
    _cleanup_free_ char *prog = mar_xasprintf("docker-credential-%s", helper);
    char *argv[] = {prog, "get", NULL};
    const char *server = is_hub(host) ? HUB_KEY : host;
    mar_proc_result r;
    mar_err *e = NULL;
    if (mar_proc_run(argv, server, strlen(server), MAR_CAP_HELPER_OUT, MAR_CAP_HELPER_ERR,
                     HELPER_TIMEOUT_MS, &r, &e) < 0) {
        mar_diag_warn("%s, ignoring", e->msg);
        mar_err_free(e);
        return -1;
    }
    int rc = reg__creds_helper_result(helper, &r, ret);
    mar_proc_result_release(&r);
    if (rc > 0) {
        hold_secrets();
    }
    return rc;
}

int reg__creds_helper_result(const char *helper, const mar_proc_result *r, reg_creds *ret)
{
    _cleanup_free_ char *prog = mar_xasprintf("docker-credential-%s", helper);
    int rc = -1;
    if (r->timed_out) {
        mar_diag_warn("credential helper '%s' timed out after %d s, ignoring", prog,
                      HELPER_TIMEOUT_MS / 1000);
    } else if (r->out_capped) {
        mar_diag_warn("credential helper '%s' wrote more than %u bytes, ignoring", prog,
                      MAR_CAP_HELPER_OUT);
    } else if (r->status != 0) {
        /* The protocol puts the failure text on stdout and helpers print what they like on
         * stderr; either may hold the secret. Only the not-found sentinel is recognised, and
         * nothing the helper wrote is echoed (docs/mar.1.md REGISTRIES). */
        if (strstr(r->out.data, "credentials not found")) {
            rc = 0;
        } else {
            mar_diag_warn("credential helper '%s' failed with status %d, ignoring", prog,
                          r->status);
        }
    } else {
        json_t *j = json_loadb(r->out.data, r->out.len, 0, NULL);
        const char *user = json_string_value(json_object_get(j, "Username"));
        const char *secret = json_string_value(json_object_get(j, "Secret"));
        if (!secret) {
            mar_diag_warn("credential helper '%s' returned no secret, ignoring", prog);
        } else {
            if (user && strcmp(user, "<token>") == 0) {
                ret->identity_token = mar_xstrdup(secret);
            } else {
                ret->username = mar_xstrdup(user ? user : "");
                ret->password = mar_xstrdup(secret);
            }
            snprintf(ret->source, sizeof(ret->source), "credential helper '%s'", helper);
            rc = 1;
        }
        json_t *sec = json_object_get(j, "Secret");
        if (json_is_string(sec)) {
            mar_memzero((void *)json_string_value(sec), json_string_length(sec));
        }
        json_decref(j);
    }
    return rc;
}

static void from_auths_entry(json_t *ent, reg_creds *ret)
{
    const char *auth = json_string_value(json_object_get(ent, "auth"));
    const char *user = json_string_value(json_object_get(ent, "username"));
    const char *pass = json_string_value(json_object_get(ent, "password"));
    const char *idt = json_string_value(json_object_get(ent, "identitytoken"));
    const char *rt = json_string_value(json_object_get(ent, "registrytoken"));
    if (auth && *auth) {
        size_t l = strlen(auth);
        _cleanup_secret_ char *dec = mar_xcalloc(1, l + 4);
        int n = EVP_DecodeBlock((unsigned char *)dec, (const unsigned char *)auth, (int)l);
        if (n > 0) {
            /* EVP_DecodeBlock counts '=' padding as zero bytes. */
            while (n > 0 && l > 0 && auth[l - 1] == '=') {
                n--;
                l--;
            }
            dec[n] = '\0';
            char *colon = strchr(dec, ':');
            if (colon) {
                *colon = '\0';
                ret->username = mar_xstrdup(dec);
                ret->password = mar_xstrdup(colon + 1);
            }
        }
        if (!ret->username) {
            mar_diag_warn("config.json 'auth' entry is not base64 user:password, ignoring");
        }
    } else if (user && pass) {
        ret->username = mar_xstrdup(user);
        ret->password = mar_xstrdup(pass);
    }
    if (idt && *idt) {
        ret->identity_token = mar_xstrdup(idt);
    }
    if (rt && *rt) {
        ret->registry_token = mar_xstrdup(rt);
    }
}

const char *reg__creds_config_helper(json_t *cfg, const char *host)
{
    /* credHelpers[host] -> credsStore (docker/cli credentials store lookup). */
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(cfg, "credHelpers"), k, v)
    {
        if (key_matches(k, host) && json_is_string(v)) {
            const char *helper = json_string_value(v);
            return *helper ? helper : NULL;
        }
    }
    const char *helper = json_string_value(json_object_get(cfg, "credsStore"));
    return helper && *helper ? helper : NULL;
}

bool reg__creds_config_auths(json_t *cfg, const char *host, reg_creds *ret)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(cfg, "auths"), k, v)
    {
        if (key_matches(k, host) && json_is_object(v)) {
            from_auths_entry(v, ret);
            return true;
        }
    }
    return false;
}

void reg__creds_load(reg_client *c, reg_host *h)
{
    if (h->creds_loaded) {
        return;
    }
    h->creds_loaded = true;
    load_config(c);
    json_t *cfg = c->docker_config;
    if (!cfg) {
        return;
    }
    /* A helper first, then auths[host] (docker/cli credentials store lookup). */
    const char *helper = reg__creds_config_helper(cfg, h->host);
    if (helper && run_helper(helper, h->host, &h->creds) > 0) {
        return;
    }
    if (reg__creds_config_auths(cfg, h->host, &h->creds) && reg__creds_any(&h->creds)) {
        hold_secrets();
        snprintf(h->creds.source, sizeof(h->creds.source), "'%s'", c->docker_config_path);
    }
}

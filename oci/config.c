/* Image configuration (image-spec config.md; Docker image spec v1.2): the platform label mar
 * cross-checks, the process defaults `mar run` uses, and the diff_ids the unpacker verifies. */
#include "oci.h"

#include <string.h>

oci_config *oci_config_free(oci_config *c)
{
    if (!c) {
        return NULL;
    }
    mar_strv_release(&c->entrypoint);
    mar_strv_release(&c->cmd);
    mar_strv_release(&c->env);
    free(c->user);
    free(c->working_dir);
    free(c->diff_ids);
    free(c);
    return NULL;
}

struct raw_config {
    char *arch;
    char *os;
    char *variant;
    char *os_version;
    json_t *features;
    json_t *config;
    json_t *rootfs;
};

static const mar_json_field config_fields[] = {
        {"architecture", MAR_JSON_STRING, offsetof(struct raw_config, arch), false},
        {"os", MAR_JSON_STRING, offsetof(struct raw_config, os), false},
        {"variant", MAR_JSON_STRING, offsetof(struct raw_config, variant), false},
        {"os.version", MAR_JSON_STRING, offsetof(struct raw_config, os_version), false},
        {"os.features", MAR_JSON_ARRAY, offsetof(struct raw_config, features), false},
        {"config", MAR_JSON_OBJECT, offsetof(struct raw_config, config), false},
        {"rootfs", MAR_JSON_OBJECT, offsetof(struct raw_config, rootfs), false},
};

static const mar_json_field exec_fields[] = {
        {"Entrypoint", MAR_JSON_STRV, offsetof(oci_config, entrypoint), false},
        {"Cmd", MAR_JSON_STRV, offsetof(oci_config, cmd), false},
        {"Env", MAR_JSON_STRV, offsetof(oci_config, env), false},
        {"User", MAR_JSON_STRING, offsetof(oci_config, user), false},
        {"WorkingDir", MAR_JSON_STRING, offsetof(oci_config, working_dir), false},
};

MAR_MUST_USE static int parse_rootfs(json_t *rootfs, oci_config *c, mar_err **err)
{
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (!ids || json_is_null(ids)) {
        return 0;
    }
    if (!json_is_array(ids)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "config field 'rootfs.diff_ids' is not an "
                           "array");
    }
    size_t n = json_array_size(ids);
    c->diff_ids = mar_xcalloc(n ? n : 1, sizeof(*c->diff_ids));
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(ids, i));
        if (!s) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "config diff_ids[%zu] is not a string", i);
        }
        if (mar_digest_parse(s, &c->diff_ids[i], err) < 0) {
            return mar_err_wrap(err, "config diff_ids[%zu]", i);
        }
    }
    c->n_diff_ids = n;
    return 0;
}

int oci_config_parse(const void *buf, size_t len, oci_config **ret, mar_err **err)
{
    _cleanup_json_ json_t *root = NULL;
    _cleanup_config_ oci_config *c = mar_xcalloc(1, sizeof(*c));
    struct raw_config r = {0};
    int rc;

    if (len > MAR_CAP_CONFIG) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "image config of %zu bytes exceeds the limit "
                           "of %u",
                           len, MAR_CAP_CONFIG);
    }
    if ((rc = mar_json_load(buf, len, "image config", &root, err)) < 0) {
        return rc;
    }
    rc = mar_json_dispatch(root, config_fields, MAR_ARRAY_SIZE(config_fields), &r, "image config",
                           err);
    if (rc < 0) {
        goto out;
    }
    if (r.arch || r.os) {
        mar_err *pe = NULL;
        rc = oci_platform_from_fields(r.os, r.arch, r.variant, r.os_version, r.features,
                                      &c->platform, &pe);
        if (rc == -MAR_EUNSUPPORTED) {
            /* Only the OS, architecture and variant of a config are compared
             * (docs/internals/platforms.md §7): an os.version or os.features list longer than mar
             * keeps is left out. */
            mar_debug("image config: %s, ignoring", pe->msg);
            mar_err_free(pe);
            rc = 0;
        } else if (rc < 0) {
            if (err) {
                *err = pe;
            } else {
                mar_err_free(pe);
            }
            mar_err_wrap(err, "image config");
            goto out;
        }
        c->has_platform = r.arch && r.os;
    }
    if (r.config) {
        rc = mar_json_dispatch(r.config, exec_fields, MAR_ARRAY_SIZE(exec_fields), c,
                               "image config 'config'", err);
        if (rc < 0) {
            goto out;
        }
    }
    if (r.rootfs && (rc = parse_rootfs(r.rootfs, c, err)) < 0) {
        goto out;
    }
    *ret = TAKE_PTR(c);
    rc = 0;
out:
    free(r.arch);
    free(r.os);
    free(r.variant);
    free(r.os_version);
    return rc;
}

void oci_chain_ids(const mar_digest *diff_ids, size_t n, mar_digest *ret)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            ret[0] = diff_ids[0];
            continue;
        }
        _cleanup_free_ char *s = mar_xasprintf("%s %s", ret[i - 1].str, diff_ids[i].str);
        mar_digest_of(MAR_DIGEST_SHA256, s, strlen(s), &ret[i]);
    }
}

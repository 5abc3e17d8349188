/* mar inspect: every platform an image offers, and what would happen on this host. */
#include "cli-internal.h"

#include <string.h>

typedef struct inspect_state {
    reg_image *img;
} inspect_state;

static void on_image(reg_client *c, reg_image *img, void *ud)
{
    (void)c;
    inspect_state *st = ud;
    st->img = img;
}

static int write_raw(const reg_blob *b)
{
    size_t off = 0;
    while (off < b->data.len) {
        size_t n = fwrite(b->data.data + off, 1, b->data.len - off, stdout);
        if (n == 0) {
            return -1;
        }
        off += n;
    }
    return fflush(stdout);
}

int cmd_inspect(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *image = args->pos.v[0];
    bool raw = cmd_flag(args, "raw");
    bool json = cmd_flag(args, "json");
    if (raw && json) {
        return cmd_usage_error(def, "--raw and --json exclude each other");
    }

    oci_host host;
    oci_host_detect(&host);
    oci_ref ref;
    if (oci_ref_parse(image, &ref, &err) < 0) {
        return cmd_fail(err);
    }
    oci_platform requested;
    const char *pspec = cmd_value(args, "platform");
    if (pspec && oci_platform_parse(pspec, &host.platform, &requested, &err) < 0) {
        oci_ref_release(&ref);
        return cmd_fail(err);
    }
    vm_target target;
    if (cmd_target(args, &host, &target, &err) < 0) {
        oci_ref_release(&ref);
        return cmd_fail(err);
    }
    if (target.is_host) {
        target.amd64_level = host.amd64_level;
    }

    reg_client *c = NULL;
    if (cmd_registry_client(args, 0, &c, &err) < 0) {
        oci_ref_release(&ref);
        return cmd_fail(err);
    }
    inspect_state st = {0};
    unsigned flags = raw ? 0 : REG_IMAGE_CHILDREN | REG_IMAGE_CONFIGS;
    reg_image_fetch(c, &ref, flags, on_image, &st);
    int rc = reg_client_run(c, &err);
    if (rc < 0) {
        reg_client_free(c);
        oci_ref_release(&ref);
        reg_image_free(st.img);
        return cmd_fail(err);
    }
    _cleanup_image_ reg_image *img = st.img;
    _cleanup_free_ char *refstr = oci_ref_string(&ref);
    oci_ref_release(&ref);
    if (!img || img->rc < 0) {
        reg_client_free(c);
        mar_err *e = img ? TAKE_PTR(img->err) : NULL;
        if (!e) {
            mar_err_set(&e, MAR_EFAIL, 0, "no result");
        }
        mar_err_wrap(&e, "cannot inspect '%s'", refstr);
        return cmd_fail(e);
    }
    if (raw) {
        reg_client_free(c);
        if (write_raw(&img->raw) < 0) {
            mar_err_set(&err, MAR_EIO, 0, "cannot write to stdout");
            return cmd_fail(err);
        }
        return 0;
    }

    cmd_report r;
    cmd_report_build(img, &target, pspec ? &requested : NULL, &r);
    if (cmd_flag(args, "deep")) {
        int64_t jobs = 8;
        const char *js = cmd_value(args, "jobs");
        if (js && !mar_parse_i64(js, 1, 64, &jobs)) {
            reg_client_free(c);
            cmd_report_release(&r);
            return cmd_usage_error(def, "--jobs takes a number from 1 to 64");
        }
        /* With --platform only the chosen entry is read; otherwise every platform. */
        for (size_t i = 0; i < r.n_rows; i++) {
            r.rows[i].deep = cmd_row_ok(&r.rows[i]) && (!pspec || r.rows[i].selected);
        }
        _cleanup_store_ reg_store *store = cmd_existing_store(args);
        rc = cmd_deep_scan(c, store, img, &r, (int)jobs, &err);
        if (rc < 0) {
            reg_client_free(c);
            cmd_report_release(&r);
            return cmd_fail(err);
        }
        cmd_report_add_deep(&r, &target);
    }
    reg_stats stats;
    reg_client_stats(c, &stats);
    mar_debug("%llu requests, %llu retries, %llu token fetches, %llu bytes",
              (unsigned long long)stats.requests, (unsigned long long)stats.retries,
              (unsigned long long)stats.token_fetches, (unsigned long long)stats.bytes);
    reg_client_free(c);
    if (json) {
        json_t *doc = cmd_report_json(&r);
        cmd_json_print(doc, cmd_stdout_is_tty());
        json_decref(doc);
    } else {
        cmd_report_print(&r, stdout);
    }
    fflush(stdout);
    for (size_t i = 0; i < r.n_problems; i++) {
        mar_diag_warn("%s", r.problems[i].message);
    }
    int status = r.status;
    cmd_report_release(&r);
    return status;
}

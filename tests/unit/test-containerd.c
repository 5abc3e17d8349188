/* The containerd client over an injected transport: what each call puts on the wire (decoded
 * back with the same generated code), how answers and gRPC statuses come back; the runtime spec;
 * user resolution against passwd/group texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "vm/vm.h"
#include "tbuf.h"

#include <string.h>

#include "containerd.pb-c.h"

typedef struct fake {
    char path[256];
    mar_buf req;
    mar_buf answer; /* message bytes to return */
    int status;     /* gRPC status to return */
    int calls;
} fake;

static int fake_call(void *ctx, const char *path, const void *req, size_t req_len, int timeout_ms,
                     mar_buf *resp, int *ret_status, mar_err **err)
{
    (void)timeout_ms;
    fake *f = ctx;
    f->calls++;
    snprintf(f->path, sizeof(f->path), "%s", path);
    mar_buf_release(&f->req);
    mar_buf_init(&f->req, MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(&f->req, req, req_len));
    *ret_status = f->status;
    if (f->status != 0) {
        return mar_err_set(err, f->status == 5 ? MAR_ENOTFOUND : MAR_EFAIL, 0,
                           "containerd: %s: status %d", strrchr(path, '/') + 1, f->status);
    }
    mar_buf_release(resp);
    mar_buf_init(resp, MAR_BUF_NOCAP);
    T_BUF(mar_buf_append(resp, f->answer.data, f->answer.len));
    return 0;
}

static const vm_grpc_ops fake_ops = {.call = fake_call};

static void answer(fake *f, const ProtobufCMessage *m)
{
    mar_buf_release(&f->answer);
    mar_buf_init(&f->answer, MAR_BUF_NOCAP);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = mar_xmalloc(n + 1);
    protobuf_c_message_pack(m, b);
    T_BUF(mar_buf_append(&f->answer, b, n));
    free(b);
}

static void test_calls(void **state)
{
    (void)state;
    fake f = {.req = MAR_BUF_INIT(0), .answer = MAR_BUF_INIT(0)};
    vm_ctd *c = vm_ctd_new(&fake_ops, &f, "fake");
    mar_err *err = NULL;

    Marctd__VersionResponse vr = MARCTD__VERSION_RESPONSE__INIT;
    vr.version = "1.6.20";
    answer(&f, &vr.base);
    char *version = NULL;
    assert_int_equal(vm_ctd_version(c, &version, &err), 0);
    assert_string_equal(version, "1.6.20");
    assert_string_equal(f.path, "/containerd.services.version.v1.Version/Version");
    free(version);

    const char *labels[] = {"mar.image", "reg/x:1", NULL};
    assert_int_equal(
            vm_ctd_container_create(c, "c1", "reg/x:1", "{\"ociVersion\":\"1.0.2\"}", labels, &err),
            0);
    assert_string_equal(f.path, "/containerd.services.containers.v1.Containers/Create");
    Marctd__CreateContainerRequest *cr =
            marctd__create_container_request__unpack(NULL, f.req.len, (const uint8_t *)f.req.data);
    assert_non_null(cr);
    assert_string_equal(cr->container->id, "c1");
    assert_string_equal(cr->container->runtime->name, "io.containerd.runc.v2");
    assert_string_equal(cr->container->spec->type_url,
                        "types.containerd.io/opencontainers/runtime-spec/1/Spec");
    assert_int_equal(cr->container->spec->value.len, strlen("{\"ociVersion\":\"1.0.2\"}"));
    assert_int_equal(cr->container->n_labels, 1);
    assert_string_equal(cr->container->labels[0]->key, "mar.image");
    marctd__create_container_request__free_unpacked(cr, NULL);

    vm_mount m = {.type = "overlay", .source = "overlay", .options = MAR_STRV_INIT};
    mar_strv_push(&m.options, "lowerdir=/a:/b");
    mar_strv_push(&m.options, "upperdir=/u");
    vm_stdio io = {.stdout_path = "/io/stdout", .stderr_path = "/io/stderr"};
    Marctd__CreateTaskResponse tr = MARCTD__CREATE_TASK_RESPONSE__INIT;
    tr.pid = 4242;
    answer(&f, &tr.base);
    uint32_t pid = 0;
    assert_int_equal(vm_ctd_task_create(c, "c1", &m, 1, &io, &pid, &err), 0);
    assert_int_equal(pid, 4242);
    Marctd__CreateTaskRequest *tq =
            marctd__create_task_request__unpack(NULL, f.req.len, (const uint8_t *)f.req.data);
    assert_non_null(tq);
    assert_int_equal(tq->n_rootfs, 1);
    assert_string_equal(tq->rootfs[0]->type, "overlay");
    assert_int_equal(tq->rootfs[0]->n_options, 2);
    assert_string_equal(tq->rootfs[0]->options[0], "lowerdir=/a:/b");
    assert_string_equal(tq->stdout, "/io/stdout");
    assert_string_equal(tq->stdin, "");
    assert_false(tq->terminal);
    marctd__create_task_request__free_unpacked(tq, NULL);
    mar_strv_release(&m.options);

    Marctd__WaitResponse wr = MARCTD__WAIT_RESPONSE__INIT;
    wr.exit_status = 42;
    answer(&f, &wr.base);
    uint32_t status = 0;
    assert_int_equal(vm_ctd_task_wait(c, "c1", &status, &err), 0);
    assert_int_equal(status, 42);
    assert_string_equal(f.path, "/containerd.services.tasks.v1.Tasks/Wait");

    Marctd__Empty empty = MARCTD__EMPTY__INIT;
    answer(&f, &empty.base);
    assert_int_equal(vm_ctd_task_kill(c, "c1", 15, false, &err), 0);
    Marctd__KillRequest *kq =
            marctd__kill_request__unpack(NULL, f.req.len, (const uint8_t *)f.req.data);
    assert_int_equal(kq->signal, 15);
    assert_false(kq->all);
    marctd__kill_request__free_unpacked(kq, NULL);

    /* A gRPC error comes back as the mapped mar code. */
    f.status = 5;
    assert_int_equal(vm_ctd_task_delete(c, "nope", NULL, &err), -MAR_ENOTFOUND);
    assert_non_null(strstr(err->msg, "Delete"));
    err = mar_err_free(err);
    vm_ctd_free(c);
    mar_buf_release(&f.req);
    mar_buf_release(&f.answer);
}

static void test_spec(void **state)
{
    (void)state;
    mar_strv args = MAR_STRV_INIT, env = MAR_STRV_INIT;
    mar_strv_push(&args, "/bin/sh");
    mar_strv_push(&env, "PATH=/bin");
    uint32_t gids[] = {10, 20};
    vm_bind b = {.source = "/srv", .dest = "/data", .readonly = true};
    vm_spec_opts o = {.args = &args,
                      .env = &env,
                      .cwd = "/work",
                      .uid = 1000,
                      .gid = 1001,
                      .gids = gids,
                      .n_gids = 2,
                      .hostname = "h",
                      .binds = &b,
                      .n_binds = 1,
                      .cgroups_path = "/mar/c1"};
    char *text = NULL;
    mar_err *err = NULL;
    assert_int_equal(vm_spec_json(&o, &text, &err), 0);
    json_error_t je;
    json_t *spec = json_loads(text, 0, &je);
    assert_non_null(spec);
    json_t *proc = json_object_get(spec, "process");
    assert_string_equal(json_string_value(json_object_get(proc, "cwd")), "/work");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(proc, "user"), "uid")),
                     1000);
    assert_int_equal(
            json_array_size(json_object_get(json_object_get(proc, "user"), "additionalGids")), 2);
    json_t *caps = json_object_get(proc, "capabilities");
    assert_null(json_object_get(caps, "inheritable"));
    assert_int_equal(json_array_size(json_object_get(caps, "bounding")), 14);
    /* A network namespace of its own unless host networking. */
    json_t *ns = json_object_get(json_object_get(spec, "linux"), "namespaces");
    bool net = false;
    size_t i;
    json_t *x;
    json_array_foreach(ns, i, x)
    {
        net = net || strcmp(json_string_value(json_object_get(x, "type")), "network") == 0;
    }
    assert_true(net);
    assert_string_equal(
            json_string_value(json_object_get(json_object_get(spec, "linux"), "cgroupsPath")),
            "/mar/c1");
    bool bound = false;
    json_array_foreach(json_object_get(spec, "mounts"), i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "destination")), "/data") == 0) {
            char *opts = json_dumps(json_object_get(x, "options"), 0);
            bound = strstr(opts, "\"ro\"") != NULL;
            free(opts);
        }
    }
    assert_true(bound);
    json_decref(spec);
    free(text);

    o.cwd = "relative";
    assert_int_equal(vm_spec_json(&o, &text, &err), -MAR_EUSAGE);
    err = mar_err_free(err);
    o.cwd = NULL;
    args.n = 0;
    assert_int_equal(vm_spec_json(&o, &text, &err), -MAR_EUSAGE);
    err = mar_err_free(err);
    args.n = 1;
    mar_strv_release(&args);
    mar_strv_release(&env);
}

static void test_users(void **state)
{
    (void)state;
    const char *passwd = "root:x:0:0:root:/root:/bin/sh\n"
                         "# a comment\n"
                         "app:x:1000:1000::/home/app:/bin/sh\n"
                         "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                         "broken:x:notanumber:1::/:\n";
    const char *group = "root:x:0:\n"
                        "app:x:1000:\n"
                        "audio:x:29:app,other\n"
                        "video:x:44:other,app\n"
                        "staff:x:50:\n";
    static const struct {
        const char *spec;
        int rc;
        uint32_t uid, gid;
        size_t n_gids;
        const char *home;
    } cases[] = {
            {NULL, 0, 0, 0, 0, "/root"},
            {"", 0, 0, 0, 0, "/root"},
            {"root", 0, 0, 0, 0, "/root"},
            {"app", 0, 1000, 1000, 2, "/home/app"},
            {"1000", 0, 1000, 1000, 2, "/home/app"},
            {"app:staff", 0, 1000, 50, 0, "/home/app"},
            {"app:44", 0, 1000, 44, 0, "/home/app"},
            {"4242", 0, 4242, 0, 0, "/"},
            {"4242:4343", 0, 4242, 4343, 0, "/"},
            {"nobody", 0, 65534, 65534, 0, "/nonexistent"},
            {"ghost", -MAR_EUSAGE, 0, 0, 0, NULL},
            {"app:ghosts", -MAR_EUSAGE, 0, 0, 0, NULL},
            {"broken", -MAR_EUSAGE, 0, 0, 0, NULL},
    };
    for (size_t k = 0; k < MAR_ARRAY_SIZE(cases); k++) {
        vm_user u;
        mar_err *err = NULL;
        int rc = vm_user_resolve(cases[k].spec, passwd, group, &u, &err);
        if (rc != cases[k].rc) {
            fail_msg("'%s': rc %d, want %d", cases[k].spec ? cases[k].spec : "(null)", rc,
                     cases[k].rc);
        }
        if (rc < 0) {
            mar_err_free(err);
            continue;
        }
        assert_int_equal(u.uid, cases[k].uid);
        assert_int_equal(u.gid, cases[k].gid);
        assert_int_equal(u.n_gids, cases[k].n_gids);
        assert_string_equal(u.home, cases[k].home);
    }
    /* No passwd at all: numbers work, names do not. */
    vm_user u;
    mar_err *err = NULL;
    assert_int_equal(vm_user_resolve("7", NULL, NULL, &u, &err), 0);
    assert_int_equal(u.uid, 7);
    assert_int_equal(vm_user_resolve("app", NULL, NULL, &u, &err), -MAR_EUSAGE);
    mar_err_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_calls),
            cmocka_unit_test(test_spec),
            cmocka_unit_test(test_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

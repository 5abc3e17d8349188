/* containerd's Version, Containers and Tasks services (api/services/{version,containers,tasks}/v1
 * of containerd 1.6), encoded with protobuf-c from vm/proto/containerd.proto, over an injectable
 * unary-call transport (grpc.c in production, canned answers in unit tests). */
#include "vm.h"

#include <string.h>

#include "containerd.pb-c.h"

#define CALL_TIMEOUT_MS 60000

/* containerd's typeurl for the OCI runtime spec, stored as JSON in an Any
 * (containerd/containerd:containers/containers.go; typeurl registration of specs.Spec). */
#define SPEC_TYPE_URL "types.containerd.io/opencontainers/runtime-spec/1/Spec"
#define RUNTIME_NAME  "io.containerd.runc.v2"

struct vm_ctd {
    const vm_grpc_ops *ops;
    void *ctx;
    char *address;
};

MAR_MUST_USE static int call(vm_ctd *c, const char *path, const ProtobufCMessage *req,
                             int timeout_ms, mar_buf *resp, mar_err **err)
{
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = mar_xmalloc(n ? n : 1);
    protobuf_c_message_pack(req, buf);
    int status;
    int rc = c->ops->call(c->ctx, path, buf, n, timeout_ms, resp, &status, err);
    free(buf);
    return rc;
}

vm_ctd *vm_ctd_new(const vm_grpc_ops *ops, void *ctx, const char *address)
{
    vm_ctd *c = mar_xcalloc(1, sizeof(*c));
    c->ops = ops;
    c->ctx = ctx;
    c->address = mar_xstrdup(address ? address : "");
    return c;
}

vm_ctd *vm_ctd_free(vm_ctd *c)
{
    if (c) {
        if (c->ops->destroy) {
            c->ops->destroy(c->ctx);
        }
        free(c->address);
        free(c);
    }
    return NULL;
}

int vm_ctd_connect(const char *address, const char *ns, vm_ctd **ret, mar_err **err)
{
    const vm_grpc_ops *ops;
    void *ctx;
    if (vm_grpc_unix_new(address, ns, &ops, &ctx, err) < 0) {
        return -mar_err_code(*err);
    }
    *ret = vm_ctd_new(ops, ctx, address);
    return 0;
}

int vm_ctd_version(vm_ctd *c, char **ret_version, mar_err **err)
{
    Marctd__Empty req = MARCTD__EMPTY__INIT;
    mar_buf resp = MAR_BUF_INIT(0);
    if (call(c, "/containerd.services.version.v1.Version/Version", &req.base, 5000, &resp, err) <
        0) {
        return -mar_err_code(*err);
    }
    Marctd__VersionResponse *v =
            marctd__version_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    mar_buf_release(&resp);
    if (!v) {
        return mar_err_set(err, MAR_EFAIL, 0, "containerd: malformed version answer");
    }
    *ret_version = mar_xstrdup(v->version ? v->version : "");
    marctd__version_response__free_unpacked(v, NULL);
    return 0;
}

int vm_ctd_plugins(vm_ctd *c, const char *type, vm_ctd_plugin **ret, size_t *ret_n, mar_err **err)
{
    Marctd__PluginsRequest req = MARCTD__PLUGINS_REQUEST__INIT;
    /* containerd's filter syntax (filters package): type==VALUE. */
    _cleanup_free_ char *filter = type ? mar_xasprintf("type==%s", type) : NULL;
    char *filters[1] = {filter};
    if (filter) {
        req.n_filters = 1;
        req.filters = filters;
    }
    mar_buf resp = MAR_BUF_INIT(0);
    if (call(c, "/containerd.services.introspection.v1.Introspection/Plugins", &req.base, 5000,
             &resp, err) < 0) {
        return -mar_err_code(*err);
    }
    Marctd__PluginsResponse *r =
            marctd__plugins_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
    mar_buf_release(&resp);
    if (!r) {
        return mar_err_set(err, MAR_EFAIL, 0, "containerd: malformed plugins answer");
    }
    vm_ctd_plugin *v = mar_xcalloc(r->n_plugins ? r->n_plugins : 1, sizeof(*v));
    for (size_t i = 0; i < r->n_plugins; i++) {
        const Marctd__Plugin *p = r->plugins[i];
        mar_strlcpy(v[i].type, p->type ? p->type : "", sizeof(v[i].type));
        mar_strlcpy(v[i].id, p->id ? p->id : "", sizeof(v[i].id));
        if (p->init_err && p->init_err->message) {
            mar_strlcpy(v[i].init_err, p->init_err->message, sizeof(v[i].init_err));
        }
    }
    *ret_n = r->n_plugins;
    *ret = v;
    marctd__plugins_response__free_unpacked(r, NULL);
    return 0;
}

int vm_ctd_container_create(vm_ctd *c, const char *id, const char *image, const char *spec_json,
                            const char *const *labels, mar_err **err)
{
    Marctd__Any spec = MARCTD__ANY__INIT;
    spec.type_url = (char *)SPEC_TYPE_URL;
    spec.value.data = (uint8_t *)spec_json;
    spec.value.len = strlen(spec_json);
    Marctd__Runtime rt = MARCTD__RUNTIME__INIT;
    rt.name = (char *)RUNTIME_NAME;
    size_t nl = 0;
    while (labels && labels[2 * nl]) {
        nl++;
    }
    Marctd__LabelEntry *le = mar_xcalloc(nl + 1, sizeof(*le));
    Marctd__LabelEntry **lp = mar_xcalloc(nl + 1, sizeof(*lp));
    for (size_t i = 0; i < nl; i++) {
        marctd__label_entry__init(&le[i]);
        le[i].key = (char *)labels[2 * i];
        le[i].value = (char *)labels[2 * i + 1];
        lp[i] = &le[i];
    }
    Marctd__Container ct = MARCTD__CONTAINER__INIT;
    ct.id = (char *)id;
    ct.image = (char *)(image ? image : "");
    ct.runtime = &rt;
    ct.spec = &spec;
    ct.labels = lp;
    ct.n_labels = nl;
    Marctd__CreateContainerRequest req = MARCTD__CREATE_CONTAINER_REQUEST__INIT;
    req.container = &ct;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.containers.v1.Containers/Create", &req.base,
                  CALL_TIMEOUT_MS, &resp, err);
    mar_buf_release(&resp);
    free(le);
    free(lp);
    return rc;
}

int vm_ctd_container_delete(vm_ctd *c, const char *id, mar_err **err)
{
    Marctd__DeleteContainerRequest req = MARCTD__DELETE_CONTAINER_REQUEST__INIT;
    req.id = (char *)id;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.containers.v1.Containers/Delete", &req.base,
                  CALL_TIMEOUT_MS, &resp, err);
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_create(vm_ctd *c, const char *id, const vm_mount *rootfs, size_t n_rootfs,
                       const vm_stdio *io, uint32_t *ret_pid, mar_err **err)
{
    Marctd__Mount *m = mar_xcalloc(n_rootfs + 1, sizeof(*m));
    Marctd__Mount **mp = mar_xcalloc(n_rootfs + 1, sizeof(*mp));
    for (size_t i = 0; i < n_rootfs; i++) {
        marctd__mount__init(&m[i]);
        m[i].type = (char *)rootfs[i].type;
        m[i].source = (char *)rootfs[i].source;
        m[i].options = (char **)rootfs[i].options.v;
        m[i].n_options = rootfs[i].options.n;
        mp[i] = &m[i];
    }
    Marctd__CreateTaskRequest req = MARCTD__CREATE_TASK_REQUEST__INIT;
    req.container_id = (char *)id;
    req.rootfs = mp;
    req.n_rootfs = n_rootfs;
    req.stdin = (char *)(io->stdin_path ? io->stdin_path : "");
    req.stdout = (char *)(io->stdout_path ? io->stdout_path : "");
    req.stderr = (char *)(io->stderr_path ? io->stderr_path : "");
    req.terminal = io->terminal;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/Create", &req.base, CALL_TIMEOUT_MS,
                  &resp, err);
    free(m);
    free(mp);
    if (rc == 0 && ret_pid) {
        Marctd__CreateTaskResponse *r =
                marctd__create_task_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        *ret_pid = r ? r->pid : 0;
        if (r) {
            marctd__create_task_response__free_unpacked(r, NULL);
        }
    }
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_start(vm_ctd *c, const char *id, uint32_t *ret_pid, mar_err **err)
{
    Marctd__StartRequest req = MARCTD__START_REQUEST__INIT;
    req.container_id = (char *)id;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/Start", &req.base, CALL_TIMEOUT_MS, &resp,
                  err);
    if (rc == 0 && ret_pid) {
        Marctd__StartResponse *r =
                marctd__start_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        *ret_pid = r ? r->pid : 0;
        if (r) {
            marctd__start_response__free_unpacked(r, NULL);
        }
    }
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_wait(vm_ctd *c, const char *id, uint32_t *ret_status, mar_err **err)
{
    Marctd__WaitRequest req = MARCTD__WAIT_REQUEST__INIT;
    req.container_id = (char *)id;
    mar_buf resp = MAR_BUF_INIT(0);
    /* No deadline: the container runs as long as it runs. */
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/Wait", &req.base, 0, &resp, err);
    if (rc == 0) {
        Marctd__WaitResponse *r =
                marctd__wait_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        if (!r) {
            rc = mar_err_set(err, MAR_EFAIL, 0, "containerd: malformed Wait answer");
        } else {
            *ret_status = r->exit_status;
            marctd__wait_response__free_unpacked(r, NULL);
        }
    }
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_kill(vm_ctd *c, const char *id, int sig, bool all, mar_err **err)
{
    Marctd__KillRequest req = MARCTD__KILL_REQUEST__INIT;
    req.container_id = (char *)id;
    req.signal = (uint32_t)sig;
    req.all = all;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/Kill", &req.base, CALL_TIMEOUT_MS, &resp,
                  err);
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_delete(vm_ctd *c, const char *id, uint32_t *ret_status, mar_err **err)
{
    Marctd__DeleteTaskRequest req = MARCTD__DELETE_TASK_REQUEST__INIT;
    req.container_id = (char *)id;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/Delete", &req.base, CALL_TIMEOUT_MS,
                  &resp, err);
    if (rc == 0 && ret_status) {
        Marctd__DeleteResponse *r =
                marctd__delete_response__unpack(NULL, resp.len, (const uint8_t *)resp.data);
        *ret_status = r ? r->exit_status : 0;
        if (r) {
            marctd__delete_response__free_unpacked(r, NULL);
        }
    }
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_resize(vm_ctd *c, const char *id, unsigned width, unsigned height, mar_err **err)
{
    Marctd__ResizePtyRequest req = MARCTD__RESIZE_PTY_REQUEST__INIT;
    req.container_id = (char *)id;
    req.width = width;
    req.height = height;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/ResizePty", &req.base, CALL_TIMEOUT_MS,
                  &resp, err);
    mar_buf_release(&resp);
    return rc;
}

int vm_ctd_task_close_stdin(vm_ctd *c, const char *id, mar_err **err)
{
    Marctd__CloseIORequest req = MARCTD__CLOSE_IOREQUEST__INIT;
    req.container_id = (char *)id;
    req.stdin = true;
    mar_buf resp = MAR_BUF_INIT(0);
    int rc = call(c, "/containerd.services.tasks.v1.Tasks/CloseIO", &req.base, CALL_TIMEOUT_MS,
                  &resp, err);
    mar_buf_release(&resp);
    return rc;
}

/* Listing a repository's tags (distribution-spec "Listing Tags": GET /v2/<name>/tags/list?n=,
 * pagination through the RFC 5988 `Link: <...>; rel="next"` header). Bounded: at most
 * REG_TAGS_MAX_PAGES pages of REG_TAGS_PAGE tags, each body capped; a registry that keeps
 * paginating is cut off with what it gave so far. */
#include "registry-internal.h"

#include <string.h>

#define REG_TAGS_PAGE      1000
#define REG_TAGS_MAX_PAGES 10
#define REG_TAGS_BODY_CAP  (4u << 20)

typedef struct tags_op {
    reg_client *c;
    reg_host *host;
    char *repo;
    mar_strv tags;
    int pages;
    reg_tags_cb cb;
    void *userdata;
} tags_op;

static void tags_free(tags_op *t)
{
    free(t->repo);
    mar_strv_release(&t->tags);
    free(t);
}

static void start(tags_op *t, const char *path);

/* The path of a `Link: </v2/x/tags/list?n=1000&last=y>; rel="next"` header, when it stays on
 * the same registry (an absolute URL to another host is not followed). */
static char *next_link(const char *link)
{
    if (!link || !strstr(link, "rel=\"next\"")) {
        return NULL;
    }
    const char *lt = strchr(link, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt || gt - lt < 2 || lt[1] != '/') {
        return NULL;
    }
    return mar_xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

static void on_done(reg_op *op)
{
    tags_op *t = op->userdata;
    mar_err *err = NULL;
    long st = op->req.status;
    if (op->rc < 0 || st < 200 || st >= 300) {
        int rc = reg__op_status_error(op, "GET tags", &err);
        reg__op_free(op);
        t->cb(t->c, rc, NULL, err, t->userdata);
        tags_free(t);
        return;
    }
    json_t *doc = NULL;
    int rc = mar_json_load(op->req.resp_body.data, op->req.resp_body.len, "tag list", &doc, &err);
    json_t *arr = rc == 0 ? json_object_get(doc, "tags") : NULL;
    if (rc == 0 && arr && !json_is_array(arr)) {
        rc = mar_err_set(&err, MAR_EINTEGRITY, 0, "tag list of '%s' is malformed", t->repo);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v)) {
            mar_strv_push(&t->tags, json_string_value(v));
        }
    }
    json_decref(doc);
    _cleanup_free_ char *next = rc == 0 ? next_link(reg_http_header(&op->req, "link")) : NULL;
    reg__op_free(op);
    if (rc < 0) {
        t->cb(t->c, rc, NULL, err, t->userdata);
        tags_free(t);
        return;
    }
    if (next && ++t->pages < REG_TAGS_MAX_PAGES) {
        start(t, next);
        return;
    }
    t->cb(t->c, 0, &t->tags, NULL, t->userdata);
    tags_free(t);
}

static void start(tags_op *t, const char *path)
{
    reg_op *op = reg__op_new(t->c, t->host, t->repo, "GET", path, on_done, t);
    op->accept = mar_xstrdup("application/json");
    op->body_cap = REG_TAGS_BODY_CAP;
    reg__op_start(op);
}

void reg_tags_list(reg_client *c, const oci_ref *ref, reg_tags_cb cb, void *userdata)
{
    tags_op *t = mar_xcalloc(1, sizeof(*t));
    t->c = c;
    t->host = reg__host_get(c, ref->api_host);
    t->repo = mar_xstrdup(ref->path);
    t->tags = (mar_strv)MAR_STRV_INIT;
    t->cb = cb;
    t->userdata = userdata;
    _cleanup_free_ char *path = mar_xasprintf("/v2/%s/tags/list?n=%d", ref->path, REG_TAGS_PAGE);
    start(t, path);
}

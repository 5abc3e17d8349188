/* Content-addressed fetches shared within one client: a manifest or blob requested by digest
 * while the same one (same registry and repository) is in flight waits for that transfer instead of
 * starting another, and one already fetched is answered from memory. Digest-addressed bytes are
 * immutable and were verified, so this is safe; it is what makes `mar audit` of fifty images
 * that share child manifests and configs (tags of one repository) cost one request for each
 * distinct document. Every requester gets its own copy (callbacks may take the buffer) and its own
 * error. Answers are kept up to SHARED_CACHE_BYTES in total. */
#include "registry-internal.h"

#include <string.h>

#define SHARED_CACHE_BYTES (64u << 20)

typedef struct waiter {
    reg_blob_cb cb;
    void *userdata;
    struct waiter *next;
} waiter;

typedef struct shared {
    char *key;
    bool done;
    bool kept; /* the answer is cached (within the budget) */
    int rc;
    reg_blob blob;
    mar_err *err;
    waiter *waiters;
    struct shared *next;
} shared;

struct reg_shared_cache {
    shared *list;
    size_t bytes;
};

static shared *find(reg_client *c, const char *key)
{
    for (shared *s = c->shared ? c->shared->list : NULL; s; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            return s;
        }
    }
    return NULL;
}

static void deliver(reg_client *c, int rc, const reg_blob *blob, const mar_err *err, reg_blob_cb cb,
                    void *userdata)
{
    if (rc < 0) {
        mar_err *e = NULL;
        mar_err_set(&e, mar_err_code(err), err ? err->sys_errno : 0, "%s",
                    err ? err->msg : "failed");
        cb(c, rc, NULL, e, userdata);
        return;
    }
    reg_blob copy = {.digest = blob->digest,
                     .content_type = blob->content_type ? mar_xstrdup(blob->content_type) : NULL,
                     .data = MAR_BUF_INIT(MAR_BUF_NOCAP)};
    mar_buf_xappend(&copy.data, blob->data.data, blob->data.len);
    cb(c, 0, &copy, NULL, userdata);
    reg_blob_release(&copy);
}

bool reg__shared_join(reg_client *c, const char *key, reg_blob_cb cb, void *userdata)
{
    shared *s = find(c, key);
    if (!s) {
        if (!c->shared) {
            c->shared = mar_xcalloc(1, sizeof(*c->shared));
        }
        s = mar_xcalloc(1, sizeof(*s));
        s->key = mar_xstrdup(key);
        s->blob.data = (mar_buf)MAR_BUF_INIT(0);
        s->next = c->shared->list;
        c->shared->list = s;
        return false;
    }
    if (s->done) {
        deliver(c, s->rc, &s->blob, s->err, cb, userdata);
        return true;
    }
    waiter *w = mar_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->userdata = userdata;
    w->next = s->waiters;
    s->waiters = w;
    return true;
}

void reg__shared_done(reg_client *c, const char *key, int rc, const reg_blob *blob,
                      const mar_err *err)
{
    shared *s = find(c, key);
    if (!s) {
        return;
    }
    s->done = true;
    s->rc = rc;
    /* Failures are not kept: a later request may well succeed (a retry after a 503 storm). */
    if (rc == 0 && c->shared->bytes + blob->data.len <= SHARED_CACHE_BYTES) {
        s->kept = true;
        s->blob.digest = blob->digest;
        s->blob.content_type = blob->content_type ? mar_xstrdup(blob->content_type) : NULL;
        mar_buf_init(&s->blob.data, MAR_BUF_NOCAP);
        mar_buf_xappend(&s->blob.data, blob->data.data, blob->data.len);
        c->shared->bytes += blob->data.len;
    }
    waiter *w = s->waiters;
    s->waiters = NULL;
    while (w) {
        waiter *next = w->next;
        deliver(c, rc, blob, err, w->cb, w->userdata);
        free(w);
        w = next;
    }
    if (!s->kept) {
        /* Forget it, so the next request fetches again. */
        shared **pp = &c->shared->list;
        while (*pp && *pp != s) {
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = s->next;
        }
        reg_blob_release(&s->blob);
        free(s->key);
        free(s);
    }
}

void reg__shared_free(reg_client *c)
{
    if (!c->shared) {
        return;
    }
    shared *s = c->shared->list;
    while (s) {
        shared *next = s->next;
        waiter *w = s->waiters;
        while (w) {
            waiter *wn = w->next;
            free(w);
            w = wn;
        }
        reg_blob_release(&s->blob);
        mar_err_free(s->err);
        free(s->key);
        free(s);
        s = next;
    }
    free(c->shared);
    c->shared = NULL;
}

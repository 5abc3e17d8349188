/* `--user` and the image config's User, resolved against the image's own /etc/passwd and
 * /etc/group, as runc does (libcontainer/user GetExecUser): a name must exist; a number need
 * not; the group defaults to the user's primary group, and supplementary groups are those that
 * list the user. The texts come from the image through an in-root, no-follow, capped read (the
 * caller's job; CVE-2024-9676); nothing here touches the host's user database. */
#include "vm.h"

#include <string.h>

/* Iterates over the lines of a passwd/group text; fields are split on ':' into f (at most
 * max), returning their count. */
static size_t fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == ':') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

static bool parse_id(const char *s, uint32_t *ret)
{
    int64_t v;
    if (!mar_parse_i64(s, 0, UINT32_MAX - 1, &v)) {
        return false;
    }
    *ret = (uint32_t)v;
    return true;
}

typedef bool (*line_fn)(char **f, size_t n, void *ud);

static void each_line(const char *text, line_fn fn, void *ud)
{
    if (!text) {
        return;
    }
    _cleanup_free_ char *copy = mar_xstrdup(text);
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        if (*line == '#' || *line == '\0') {
            continue;
        }
        char *f[8];
        size_t n = fields(line, f, MAR_ARRAY_SIZE(f));
        if (!fn(f, n, ud)) {
            return;
        }
    }
}

typedef struct find_user {
    const char *want;
    bool by_id;
    uint32_t id;
    bool found;
    char name[256];
    uint32_t uid, gid;
    char home[256];
} find_user;

static bool match_user(char **f, size_t n, void *ud)
{
    find_user *fu = ud;
    uint32_t uid, gid;
    if (n < 4 || !parse_id(f[2], &uid) || !parse_id(f[3], &gid)) {
        return true;
    }
    if ((fu->by_id && uid == fu->id) || (!fu->by_id && strcmp(f[0], fu->want) == 0)) {
        fu->found = true;
        mar_strlcpy(fu->name, f[0], sizeof(fu->name));
        fu->uid = uid;
        fu->gid = gid;
        mar_strlcpy(fu->home, n > 5 ? f[5] : "/", sizeof(fu->home));
        return false;
    }
    return true;
}

typedef struct find_group {
    const char *want;
    bool by_id;
    uint32_t id;
    bool found;
    uint32_t gid;
} find_group;

static bool match_group(char **f, size_t n, void *ud)
{
    find_group *fg = ud;
    uint32_t gid;
    if (n < 3 || !parse_id(f[2], &gid)) {
        return true;
    }
    if ((fg->by_id && gid == fg->id) || (!fg->by_id && strcmp(f[0], fg->want) == 0)) {
        fg->found = true;
        fg->gid = gid;
        return false;
    }
    return true;
}

typedef struct members {
    const char *user;
    vm_user *u;
} members;

static bool match_member(char **f, size_t n, void *ud)
{
    members *m = ud;
    uint32_t gid;
    if (n < 4 || !parse_id(f[2], &gid)) {
        return true;
    }
    _cleanup_free_ char *list = mar_xstrdup(f[3]);
    for (char *s = list, *next; s && *s; s = next) {
        next = strchr(s, ',');
        if (next) {
            *next++ = '\0';
        }
        if (strcmp(s, m->user) == 0 && m->u->n_gids < MAR_ARRAY_SIZE(m->u->gids) &&
            gid != m->u->gid) {
            m->u->gids[m->u->n_gids++] = gid;
        }
    }
    return true;
}

int vm_user_resolve(const char *spec, const char *passwd, const char *group, vm_user *ret,
                    mar_err **err)
{
    vm_user u = {.uid = 0, .gid = 0};
    mar_strlcpy(u.home, "/root", sizeof(u.home));
    _cleanup_free_ char *copy = mar_xstrdup(spec && *spec ? spec : "0");
    char *gpart = strchr(copy, ':');
    if (gpart) {
        *gpart++ = '\0';
    }
    find_user fu = {.want = copy};
    fu.by_id = parse_id(copy, &fu.id);
    each_line(passwd, match_user, &fu);
    if (fu.found) {
        u.uid = fu.uid;
        u.gid = fu.gid;
        mar_strlcpy(u.home, fu.home, sizeof(u.home));
    } else if (fu.by_id) {
        u.uid = fu.id; /* a number need not be in /etc/passwd (runc: gid 0, home "/") */
        mar_strlcpy(u.home, u.uid == 0 ? "/root" : "/", sizeof(u.home));
    } else {
        return mar_err_set(err, MAR_EUSAGE, 0, "no user '%s' in the image's /etc/passwd", copy);
    }
    if (gpart && *gpart) {
        find_group fg = {.want = gpart};
        fg.by_id = parse_id(gpart, &fg.id);
        each_line(group, match_group, &fg);
        if (fg.found) {
            u.gid = fg.gid;
        } else if (fg.by_id) {
            u.gid = fg.id;
        } else {
            return mar_err_set(err, MAR_EUSAGE, 0, "no group '%s' in the image's /etc/group",
                               gpart);
        }
    } else if (fu.found) {
        members m = {.user = fu.name, .u = &u};
        each_line(group, match_member, &m);
    }
    *ret = u;
    return 0;
}

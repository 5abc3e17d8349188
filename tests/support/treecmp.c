/* Tree listings for comparing unpack results (see treecmp.h). */
#include "treecmp.h"
#include "tbuf.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

typedef struct inode_seen {
    dev_t dev;
    ino_t ino;
    char *first;
} inode_seen;

typedef struct walker {
    mar_strv lines;
    unsigned flags;
    inode_seen *seen;
    size_t n_seen;
} walker;

static void hash_file(int dirfd, const char *name, char out[72])
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
    char buf[65536];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
        mar_hasher_update(h, buf, (size_t)n);
    }
    if (fd >= 0) {
        close(fd);
    }
    mar_digest d;
    mar_hasher_final(h, &d);
    snprintf(out, 72, "%.12s", mar_digest_hex(&d));
}

static const char *link_group(walker *w, const struct stat *st, const char *path)
{
    if (!(w->flags & TREE_INODES) || S_ISDIR(st->st_mode) || st->st_nlink < 2) {
        return NULL;
    }
    for (size_t i = 0; i < w->n_seen; i++) {
        if (w->seen[i].dev == st->st_dev && w->seen[i].ino == st->st_ino) {
            return w->seen[i].first;
        }
    }
    w->seen = mar_xrealloc(w->seen, (w->n_seen + 1) * sizeof(*w->seen));
    w->seen[w->n_seen++] = (inode_seen){st->st_dev, st->st_ino, mar_xstrdup(path)};
    return NULL;
}

static void walk(walker *w, int parent, const char *prefix)
{
    int fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        return;
    }
    mar_strv names = MAR_STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            mar_strv_push(&names, de->d_name);
        }
    }
    mar_strv_sort(&names);
    for (size_t i = 0; i < names.n; i++) {
        const char *nm = names.v[i];
        _cleanup_free_ char *path = mar_xasprintf("%s%s%s", prefix, *prefix ? "/" : "", nm);
        struct stat st;
        if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            continue;
        }
        char what[4200] = "";
        char type = '?';
        if (S_ISDIR(st.st_mode)) {
            type = 'd';
            if (w->flags & TREE_DIR_TIMES) {
                snprintf(what, sizeof(what), "t=%lld", (long long)st.st_mtim.tv_sec);
            }
        } else if (S_ISREG(st.st_mode)) {
            type = 'f';
            char h[72];
            hash_file(dirfd(d), nm, h);
            snprintf(what, sizeof(what), "%lld:%s", (long long)st.st_size, h);
        } else if (S_ISLNK(st.st_mode)) {
            type = 'l';
            char t[4097];
            ssize_t tl = readlinkat(dirfd(d), nm, t, sizeof(t) - 1);
            t[tl > 0 ? tl : 0] = '\0';
            snprintf(what, sizeof(what), "-> %s", t);
        } else {
            type = S_ISCHR(st.st_mode)    ? 'c'
                   : S_ISBLK(st.st_mode)  ? 'b'
                   : S_ISFIFO(st.st_mode) ? 'p'
                                          : 's';
            snprintf(what, sizeof(what), "%u,%u", major(st.st_rdev), minor(st.st_rdev));
        }
        const char *grp = link_group(w, &st, path);
        mar_strv_push_take(&w->lines,
                           mar_xasprintf("%s %c %04o %u:%u %s%s%s", path, type,
                                         (unsigned)(st.st_mode & 07777), st.st_uid, st.st_gid, what,
                                         grp ? " =" : "", grp ? grp : ""));
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                walk(w, sub, path);
                close(sub);
            }
        }
    }
    mar_strv_release(&names);
    closedir(d);
}

char *tree_listing(const char *root, unsigned flags)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    walker w = {.lines = MAR_STRV_INIT, .flags = flags};
    walk(&w, fd, "");
    close(fd);
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    for (size_t i = 0; i < w.lines.n; i++) {
        T_BUF(mar_buf_printf(&b, "%s\n", w.lines.v[i]));
    }
    mar_strv_release(&w.lines);
    for (size_t i = 0; i < w.n_seen; i++) {
        free(w.seen[i].first);
    }
    free(w.seen);
    return mar_buf_detach(&b, NULL);
}

static void split_lines(const char *s, mar_strv *out)
{
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t l = nl ? (size_t)(nl - s) : strlen(s);
        mar_strv_push_take(out, mar_xstrndup(s, l));
        s += l + (nl ? 1 : 0);
    }
}

bool tree_equal(const char *a, const char *b, const char *label_a, const char *label_b)
{
    if (strcmp(a, b) == 0) {
        return true;
    }
    mar_strv la = MAR_STRV_INIT, lb = MAR_STRV_INIT;
    split_lines(a, &la);
    split_lines(b, &lb);
    for (size_t i = 0; i < la.n; i++) {
        if (!mar_strv_contains(&lb, la.v[i])) {
            fprintf(stderr, "  only in %s: %s\n", label_a, la.v[i]);
        }
    }
    for (size_t i = 0; i < lb.n; i++) {
        if (!mar_strv_contains(&la, lb.v[i])) {
            fprintf(stderr, "  only in %s: %s\n", label_b, lb.v[i]);
        }
    }
    mar_strv_release(&la);
    mar_strv_release(&lb);
    return false;
}

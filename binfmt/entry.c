/* binfmt_misc entries as the kernel prints them, and the kernel's lookup over them
 * (torvalds/linux fs/binfmt_misc.c; docs/internals/binfmt-and-rosetta.md §3, §4, §7). */
#include "binfmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

const char *binfmt_kind_name(binfmt_kind k)
{
    switch (k) {
    case BINFMT_KIND_NONE:
        return "none";
    case BINFMT_KIND_QEMU:
        return "qemu";
    case BINFMT_KIND_ROSETTA:
        return "rosetta";
    case BINFMT_KIND_BUILDKIT_QEMU:
        return "buildkit-qemu";
    case BINFMT_KIND_OTHER:
        return "other";
    }
    return "other";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int parse_hex(const char *s, unsigned char *out, size_t cap, size_t *ret_len)
{
    size_t n = 0;
    while (*s && *s != '\n') {
        int hi = hexval(s[0]), lo = hexval(s[1]);
        if (hi < 0 || lo < 0 || n >= cap) {
            return -1;
        }
        out[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    *ret_len = n;
    return 0;
}

int binfmt_entry_parse(const char *name, const char *text, binfmt_entry *ret, mar_err **err)
{
    binfmt_entry e = {0};
    bool have_state = false, have_mask = false;
    size_t mask_len = 0;

    if (!mar_strlcpy(e.name, name, sizeof(e.name))) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry name '%.40s...' is too long",
                           name);
    }
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[512];
        if (len >= sizeof(buf)) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry '%s' has an overlong line",
                               name);
        }
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = eol ? eol + 1 : NULL;

        if (strcmp(buf, "enabled") == 0 || strcmp(buf, "disabled") == 0) {
            e.enabled = buf[0] == 'e';
            have_state = true;
        } else if (mar_str_startswith(buf, "interpreter ")) {
            mar_strlcpy(e.interpreter, buf + 12, sizeof(e.interpreter));
        } else if (mar_str_startswith(buf, "flags:")) {
            const char *f = buf + 6;
            while (*f == ' ') {
                f++;
            }
            mar_strlcpy(e.flags, f, sizeof(e.flags));
        } else if (mar_str_startswith(buf, "offset ")) {
            int64_t off;
            if (!mar_parse_i64(buf + 7, 0, BINFMT_HEADER_SIZE * 2, &off)) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry '%s' has a bad offset",
                                   name);
            }
            e.offset = (unsigned)off;
        } else if (mar_str_startswith(buf, "magic ")) {
            if (parse_hex(buf + 6, e.magic, sizeof(e.magic), &e.magic_len) < 0) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry '%s' has a bad magic",
                                   name);
            }
        } else if (mar_str_startswith(buf, "mask ")) {
            if (parse_hex(buf + 5, e.mask, sizeof(e.mask), &mask_len) < 0) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry '%s' has a bad mask",
                                   name);
            }
            have_mask = true;
        } else if (mar_str_startswith(buf, "extension ")) {
            e.is_extension = true;
            mar_strlcpy(e.extension, buf + 10, sizeof(e.extension));
        }
        /* Newer kernels may print more lines; they are ignored
         * (docs/internals/binfmt-and-rosetta.md §4). */
    }
    if (!have_state) {
        return mar_err_set(err, MAR_EINTEGRITY, 0,
                           "binfmt entry '%s' does not say enabled or "
                           "disabled",
                           name);
    }
    if (!e.is_extension && e.magic_len == 0) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "binfmt entry '%s' has no magic", name);
    }
    if (have_mask) {
        if (mask_len != e.magic_len) {
            return mar_err_set(err, MAR_EINTEGRITY, 0,
                               "binfmt entry '%s': mask and magic differ "
                               "in length",
                               name);
        }
        e.has_mask = true;
    } else {
        memset(e.mask, 0xff, sizeof(e.mask));
    }
    *ret = e;
    return 0;
}

bool binfmt_entry_has_flag(const binfmt_entry *e, char flag)
{
    return strchr(e->flags, flag) != NULL;
}

bool binfmt_entry_matches(const binfmt_entry *e, const unsigned char *hdr, size_t len)
{
    if (e->is_extension || e->magic_len == 0) {
        return false;
    }
    if (e->offset + e->magic_len > len) {
        return false;
    }
    for (size_t j = 0; j < e->magic_len; j++) {
        if ((hdr[e->offset + j] ^ e->magic[j]) & e->mask[j]) {
            return false;
        }
    }
    return true;
}

binfmt_kind binfmt_entry_kind(const binfmt_entry *e)
{
    static const char *const rosetta_paths[] = {"/mnt/lima-rosetta/rosetta", "/media/rosetta",
                                                "/mnt/rosetta", "/var/run/rosetta"};
    if (mar_str_startswith(e->name, "buildkit-qemu")) {
        return BINFMT_KIND_BUILDKIT_QEMU;
    }
    for (size_t i = 0; i < MAR_ARRAY_SIZE(rosetta_paths); i++) {
        if (strcmp(e->interpreter, rosetta_paths[i]) == 0) {
            return BINFMT_KIND_ROSETTA;
        }
    }
    const char *base = strrchr(e->interpreter, '/');
    base = base ? base + 1 : e->interpreter;
    if (strcmp(base, "rosetta") == 0) {
        return BINFMT_KIND_ROSETTA;
    }
    /* qemu-aarch64, qemu-aarch64-static, Debian's /usr/libexec/qemu-binfmt/aarch64-binfmt-P. */
    if (strstr(e->interpreter, "qemu")) {
        return BINFMT_KIND_QEMU;
    }
    return BINFMT_KIND_OTHER;
}

const char *binfmt_root(const char *arg)
{
    if (arg && *arg) {
        return arg;
    }
    const char *env = getenv("MAR_BINFMT_ROOT");
    return env && *env ? env : BINFMT_DEFAULT_ROOT;
}

void binfmt_table_release(binfmt_table *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static int cmp_newest_first(const void *a, const void *b)
{
    const binfmt_entry *x = a, *y = b;
    if (x->ctime_ns != y->ctime_ns) {
        return x->ctime_ns < y->ctime_ns ? 1 : -1;
    }
    return x->readdir_pos < y->readdir_pos ? -1 : x->readdir_pos > y->readdir_pos ? 1 : 0;
}

int binfmt_table_read(const char *root, binfmt_table *ret, mar_err **err)
{
    binfmt_table t = {0};
    mar_strlcpy(t.root, root, sizeof(t.root));
    _cleanup_close_ int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        *ret = t;
        return 0;
    }
    mar_buf st = MAR_BUF_INIT(MAR_CAP_BINFMT_ENTRY);
    mar_err *e = NULL;
    if (mar_read_file_at(dfd, "status", MAR_CAP_BINFMT_ENTRY, &st, &e) < 0) {
        mar_err_free(e);
        *ret = t;
        return 0;
    }
    t.mounted = true;
    t.global_enabled = mar_str_startswith(st.data, "enabled");
    mar_buf_release(&st);

    int dfd2 = dup(dfd);
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        if (dfd2 >= 0) {
            close(dfd2);
        }
        return mar_err_set(err, MAR_EIO, errno, "cannot list '%s'", root);
    }
    size_t alloc = 0;
    int64_t pos = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "register") == 0 ||
            strcmp(de->d_name, "status") == 0) {
            continue;
        }
        mar_buf text = MAR_BUF_INIT(MAR_CAP_BINFMT_ENTRY);
        if (mar_read_file_at(dfd, de->d_name, MAR_CAP_BINFMT_ENTRY, &text, &e) < 0) {
            /* An entry removed while listing, or not a regular file: skip it. */
            e = mar_err_free(e);
            continue;
        }
        binfmt_entry ent;
        int rc = binfmt_entry_parse(de->d_name, text.data, &ent, &e);
        mar_buf_release(&text);
        if (rc < 0) {
            mar_diag_warn("%s, ignoring", e->msg);
            e = mar_err_free(e);
            continue;
        }
        /* The kernel inserts new entries at the head of its list and offers no sequence number;
         * an entry's ctime is its registration time (readdir lists newest first as a tie
         * breaker). */
        struct stat sb;
        ent.readdir_pos = pos++;
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            ent.ctime_ns = (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec;
        }
        if (t.n == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            t.v = mar_xrealloc(t.v, alloc * sizeof(*t.v));
        }
        t.v[t.n++] = ent;
    }
    closedir(d);
    if (t.n > 1) {
        qsort(t.v, t.n, sizeof(*t.v), cmp_newest_first);
    }
    *ret = t;
    return 0;
}

const binfmt_entry *binfmt_effective(const binfmt_table *t, const binfmt_arch *a,
                                     size_t *ret_shadowed)
{
    unsigned char exec_hdr[BINFMT_HEADER_SIZE], dyn_hdr[BINFMT_HEADER_SIZE];
    binfmt_synthetic_header(a, 2, exec_hdr);
    binfmt_synthetic_header(a, 3, dyn_hdr);
    const binfmt_entry *winner = NULL;
    size_t shadowed = 0;
    for (size_t i = 0; i < t->n; i++) {
        const binfmt_entry *e = &t->v[i];
        if (!binfmt_entry_matches(e, exec_hdr, sizeof(exec_hdr)) &&
            !binfmt_entry_matches(e, dyn_hdr, sizeof(dyn_hdr))) {
            continue;
        }
        if (!e->enabled) {
            continue;
        }
        if (!winner) {
            winner = e;
        } else {
            shadowed++;
        }
    }
    if (ret_shadowed) {
        *ret_shadowed = shadowed;
    }
    return t->global_enabled ? winner : NULL;
}

/* Registering and removing emulators (docs/internals/binfmt-and-rosetta.md §8): only entries named
 * `mar-*` are ever written, disabled or removed; an architecture another entry already handles is
 * left alone unless the user names that entry; the interpreter must be a root-owned, unwritable,
 * static ELF; the registration string is built and validated here and written with one
 * write(2). */
#include "binfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#define BINFMT_MISC_MAGIC 0x42494e4d
#define MAX_REGISTER      1920 /* fs/binfmt_misc.c MAX_REGISTER_LENGTH */
#define MAX_INTERPRETER   127

bool binfmt_root_is_kernel(const char *root)
{
    struct statfs sf;
    return statfs(root, &sf) == 0 && (unsigned long)sf.f_type == BINFMT_MISC_MAGIC;
}

int binfmt_mount(const char *root, mar_err **err)
{
    _cleanup_free_ char *status = mar_xasprintf("%s/status", root);
    if (access(status, F_OK) == 0) {
        return 0;
    }
    if (strcmp(root, BINFMT_DEFAULT_ROOT) != 0) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "'%s' has no binfmt_misc: mar mounts only %s itself", root,
                           BINFMT_DEFAULT_ROOT);
    }
    if (mount("binfmt_misc", root, "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        int e = errno;
        return mar_err_set(err, e == EPERM ? MAR_EUNSUPPORTED : MAR_EIO, e,
                           "cannot mount binfmt_misc at '%s'%s", root,
                           e == EPERM ? " (needs root)" : "");
    }
    mar_diag_notice("mounted binfmt_misc at '%s'", root);
    return 0;
}

const char *binfmt_entry_name(const binfmt_arch *a, binfmt_kind emu, char *buf, size_t n)
{
    if (emu == BINFMT_KIND_ROSETTA) {
        snprintf(buf, n, "mar-rosetta");
    } else {
        snprintf(buf, n, "mar-qemu-%s", a->qemu_name);
    }
    return buf;
}

/* The interpreter containers will run through F must be root's and unwritable: a writable one
 * is a host binary any container could replace (CVE-2019-5736 class). Static, because with F it
 * runs inside foreign root filesystems that have no host libraries. */
int binfmt_check_interpreter(const char *path, bool allow_symlink, mar_digest *ret_digest,
                             mar_err **err)
{
    if (path[0] != '/' || strlen(path) > MAX_INTERPRETER) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "interpreter '%s' must be an absolute path of at most %d bytes", path,
                           MAX_INTERPRETER);
    }
    struct stat ls;
    if (lstat(path, &ls) < 0) {
        return mar_err_set(err, errno == ENOENT ? MAR_ENOTFOUND : MAR_EIO, errno,
                           "cannot find interpreter '%s'", path);
    }
    if (S_ISLNK(ls.st_mode)) {
        if (!allow_symlink) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0, "interpreter '%s' is a symlink, refusing",
                               path);
        }
        if (ls.st_uid != 0) {
            return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                               "interpreter link '%s' is not owned by root, refusing", path);
        }
    }
    int flags = O_RDONLY | O_CLOEXEC | (allow_symlink ? 0 : O_NOFOLLOW);
    _cleanup_close_ int fd = open(path, flags);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot open interpreter '%s'", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot stat interpreter '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "interpreter '%s' is not a regular file, refusing", path);
    }
    if (st.st_uid != 0) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "interpreter '%s' is not owned by root, refusing", path);
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "interpreter '%s' is writable by group or others, refusing", path);
    }
    unsigned char head[16384];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    oci_elf_info info;
    oci_elf_parse(head, n > 0 ? (size_t)n : 0, &info);
    if (!info.is_elf) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "interpreter '%s' is not an ELF program, "
                           "refusing",
                           path);
    }
    if (info.dynamic) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "interpreter '%s' is dynamically linked: it would not run inside "
                           "foreign root filesystems, refusing",
                           path);
    }
    if (ret_digest) {
        _cleanup_hasher_ mar_hasher *h = mar_hasher_new(MAR_DIGEST_SHA256);
        char buf[65536];
        off_t off = 0;
        for (;;) {
            ssize_t k = pread(fd, buf, sizeof(buf), off);
            if (k < 0) {
                return mar_err_set(err, MAR_EIO, errno, "cannot read interpreter '%s'", path);
            }
            if (k == 0) {
                break;
            }
            mar_hasher_update(h, buf, (size_t)k);
            off += k;
        }
        mar_hasher_final(h, ret_digest);
    }
    return 0;
}

int binfmt_register_line(const char *name, const binfmt_arch *a, const char *interpreter,
                         const char *flags, char *buf, size_t n, mar_err **err)
{
    for (const char *p = name; *p; p++) {
        if (*p == '/' || *p == ':' || *p == '\n') {
            return mar_err_set(err, MAR_EUSAGE, 0, "bad binfmt entry name '%s'", name);
        }
    }
    if (strchr(interpreter, ':') || strchr(interpreter, '\n')) {
        return mar_err_set(err, MAR_EUSAGE, 0, "interpreter path '%s' may not contain ':'",
                           interpreter);
    }
    int len = snprintf(buf, n, ":%s:M:0:%s:%s:%s:%s", name, a->magic, a->mask, interpreter, flags);
    if (len < 11 || len > MAX_REGISTER || (size_t)len >= n) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "registration for '%s' is %d bytes, outside the "
                           "kernel's 11..%d",
                           name, len, MAX_REGISTER);
    }
    return 0;
}

MAR_MUST_USE static int write_once(const char *path, const char *data, mar_err **err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return mar_err_set(err, e == EACCES || e == EPERM ? MAR_EUNSUPPORTED : MAR_EIO, e,
                           "cannot open '%s'%s", path,
                           e == ENOENT                   ? ": is binfmt_misc mounted?"
                           : (e == EACCES || e == EPERM) ? " (needs root)"
                                                         : "");
    }
    size_t l = strlen(data);
    /* One write(2): the kernel parses each write as a whole registration. */
    ssize_t w = write(fd, data, l);
    if (w != (ssize_t)l) {
        int e = w < 0 ? errno : EIO;
        return mar_err_set(err, e == EEXIST ? MAR_EFAIL : MAR_EIO, e, "writing to '%s' failed",
                           path);
    }
    return 0;
}

static const binfmt_entry *find_named(const binfmt_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0) {
            return &t->v[i];
        }
    }
    return NULL;
}

static bool same_flags(const char *a, const char *b)
{
    /* The kernel prints flags in its own order (P O C F). */
    for (const char *p = "POCF"; *p; p++) {
        if ((strchr(a, *p) != NULL) != (strchr(b, *p) != NULL)) {
            return false;
        }
    }
    return true;
}

int binfmt_install(const binfmt_install_opts *o, const binfmt_arch *a, binfmt_change *ret,
                   mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    ret->arch = a;
    binfmt_kind emu = o->emulator == BINFMT_KIND_ROSETTA ? BINFMT_KIND_ROSETTA : BINFMT_KIND_QEMU;
    if (emu == BINFMT_KIND_ROSETTA && a->id != BINFMT_ARCH_AMD64) {
        return mar_err_set(err, MAR_EUNSUPPORTED, 0,
                           "Rosetta runs x86-64 (amd64) binaries only, not %s", a->elf->arch);
    }
    binfmt_entry_name(a, emu, ret->name, sizeof(ret->name));

    /* The interpreter and flags. */
    bool symlink_ok = false;
    if (emu == BINFMT_KIND_ROSETTA) {
        mar_strlcpy(ret->interpreter,
                    o->rosetta_path ? o->rosetta_path : "/mnt/lima-rosetta/rosetta",
                    sizeof(ret->interpreter));
    } else if (o->preserve_argv0) {
        /* Debian's qemu knows it must take the extra argument of the P flag when started
         * through its -binfmt-P link. */
        snprintf(ret->interpreter, sizeof(ret->interpreter), "%s/%s-binfmt-P",
                 o->qemu_path ? o->qemu_path : "/usr/libexec/qemu-binfmt", a->qemu_name);
        symlink_ok = true;
    } else {
        snprintf(ret->interpreter, sizeof(ret->interpreter), "%s/qemu-%s-static",
                 o->qemu_path ? o->qemu_path : "/usr/bin", a->qemu_name);
    }
    snprintf(ret->flags, sizeof(ret->flags), "%s%sF", o->preserve_argv0 ? "P" : "",
             o->allow_setuid ? "C" : "");
    if (binfmt_check_interpreter(ret->interpreter, symlink_ok, &ret->interp_digest, err) < 0) {
        return -mar_err_code(*err);
    }

    if (strcmp(o->root, BINFMT_DEFAULT_ROOT) == 0 && binfmt_mount(o->root, err) < 0) {
        return -mar_err_code(*err);
    }
    binfmt_table t;
    if (binfmt_table_read(o->root, &t, err) < 0) {
        return -mar_err_code(*err);
    }
    int rc = 0;
    if (!t.mounted) {
        rc = mar_err_set(err, MAR_EUNSUPPORTED, 0, "binfmt_misc is not mounted at '%s'", o->root);
        goto out;
    }
    const binfmt_entry *mine = find_named(&t, ret->name);
    char cur_flags[16] = "";
    if (mine) {
        /* The kernel shows C as O plus C. */
        mar_strlcpy(cur_flags, mine->flags, sizeof(cur_flags));
    }
    char want_flags[16];
    snprintf(want_flags, sizeof(want_flags), "%s%s", ret->flags, o->allow_setuid ? "O" : "");
    if (mine && mine->enabled && strcmp(mine->interpreter, ret->interpreter) == 0 &&
        same_flags(cur_flags, want_flags)) {
        ret->action = BINFMT_ALREADY;
        goto out;
    }
    size_t shadowed = 0;
    const binfmt_entry *winner = binfmt_effective(&t, a, &shadowed);
    if (winner && strcmp(winner->name, ret->name) != 0) {
        mar_strlcpy(ret->other, winner->name, sizeof(ret->other));
        if (!o->replace_handler || strcmp(o->replace_handler, winner->name) != 0) {
            ret->action = BINFMT_HANDLED_BY_OTHER;
            goto out;
        }
        ret->shadows = true; /* ours, registered later, wins */
    }
    char path[512];
    if (mine) {
        /* Ours but different: replace it. */
        snprintf(path, sizeof(path), "%s/%s", o->root, ret->name);
        if ((rc = write_once(path, "-1", err)) < 0) {
            goto out;
        }
        ret->replaced = true;
    }
    char line[MAX_REGISTER + 64];
    if ((rc = binfmt_register_line(ret->name, a, ret->interpreter, ret->flags, line, sizeof(line),
                                   err)) < 0) {
        goto out;
    }
    snprintf(path, sizeof(path), "%s/register", o->root);
    if ((rc = write_once(path, line, err)) < 0) {
        mar_err_wrap(err, "registering '%s'", ret->name);
        goto out;
    }
    ret->action = BINFMT_INSTALLED;
out:
    binfmt_table_release(&t);
    return rc;
}

int binfmt_uninstall(const char *root, const binfmt_arch *a, binfmt_change *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    ret->arch = a;
    binfmt_table t;
    if (binfmt_table_read(root, &t, err) < 0) {
        return -mar_err_code(*err);
    }
    int rc = 0;
    ret->action = BINFMT_NOTHING;
    unsigned char exec_hdr[BINFMT_HEADER_SIZE], dyn_hdr[BINFMT_HEADER_SIZE];
    binfmt_synthetic_header(a, 2, exec_hdr);
    binfmt_synthetic_header(a, 3, dyn_hdr);
    for (size_t i = 0; i < t.n; i++) {
        const binfmt_entry *e = &t.v[i];
        bool handles = binfmt_entry_matches(e, exec_hdr, sizeof(exec_hdr)) ||
                       binfmt_entry_matches(e, dyn_hdr, sizeof(dyn_hdr));
        if (!handles) {
            continue;
        }
        if (!mar_str_startswith(e->name, "mar-")) {
            /* Not ours: reported, never touched. */
            if (!ret->other[0]) {
                mar_strlcpy(ret->other, e->name, sizeof(ret->other));
            }
            continue;
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, e->name);
        if ((rc = write_once(path, "-1", err)) < 0) {
            mar_err_wrap(err, "removing '%s'", e->name);
            break;
        }
        mar_strlcpy(ret->name, e->name, sizeof(ret->name));
        mar_strlcpy(ret->interpreter, e->interpreter, sizeof(ret->interpreter));
        ret->action = BINFMT_REMOVED;
    }
    binfmt_table_release(&t);
    return rc;
}

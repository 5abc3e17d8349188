/* mar unpack: an image flattened into a directory, layer after layer, pulling it first when the
 * store does not have it (docs/mar-unpack.1.md). The tree is built next to DIR under a
 * temporary name and renamed into place only when every layer applied and matched its
 * DiffID, so DIR never holds half an image. */
#include "cli-internal.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

/* DIR may not exist yet, or be an empty directory (rename(2) replaces an empty one). */
MAR_MUST_USE static int check_dest(const char *dir, mar_err **err)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        return errno == ENOENT ? 0 : mar_err_set(err, MAR_EIO, errno, "cannot stat '%s'", dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' exists and is not a directory", dir);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) {
            close(fd);
        }
        return mar_err_set(err, MAR_EIO, errno, "cannot open '%s'", dir);
    }
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d))) {
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    }
    closedir(d);
    if (n) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not empty, refusing to unpack into it",
                           dir);
    }
    return 0;
}

/* ".NAME.mar-XXXXXX": the temporary sibling an unpack builds its tree in. */
static bool is_unpack_temp(const char *name)
{
    size_t l = strlen(name);
    return name[0] == '.' && l > 12 && memcmp(name + l - 11, ".mar-", 5) == 0;
}

/* Removes the temporary siblings of unpacks that died (SIGKILL, power loss) from parent: an
 * unpack holds an exclusive flock on its directory until it is renamed into place, so one that
 * can be locked is nobody's. The parent itself is locked exclusively while sweeping and shared
 * while a new sibling is made and locked, so a sibling is never taken before its owner locks it
 * (docs/mar-unpack.1.md). */
static void sweep_dead_temps(int pfd)
{
    if (flock(pfd, LOCK_EX | LOCK_NB) < 0) {
        return; /* another unpack is making its sibling: the next run sweeps */
    }
    int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0) {
            close(dfd);
        }
        flock(pfd, LOCK_UN);
        return;
    }
    mar_strv dead = MAR_STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_unpack_temp(de->d_name)) {
            continue;
        }
        int fd = openat(pfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            mar_strv_push(&dead, de->d_name);
        }
        close(fd);
    }
    closedir(d);
    for (size_t i = 0; i < dead.n; i++) {
        mar_err *e = NULL;
        if (oci_remove_at(pfd, dead.v[i], &e) == 0) {
            mar_debug("removed '%s', left by an unpack that did not finish", dead.v[i]);
        }
        mar_err_free(e);
    }
    mar_strv_release(&dead);
    flock(pfd, LOCK_UN);
}

MAR_MUST_USE static int apply_layers(reg_store *s, const reg_store_image *im, int rootfd,
                                     bool quiet, uint64_t *ret_files, uint64_t *ret_bytes,
                                     mar_err **err)
{
    size_t n = im->manifest->n_layers;
    for (size_t i = 0; i < n; i++) {
        const oci_descriptor *l = &im->manifest->layers[i];
        int bfd;
        if (reg_store_blob_open(s, &l->digest, &bfd, err) < 0) {
            return -mar_err_code(*err);
        }
        _cleanup_close_ int blobfd = bfd;
        oci_unpack_opts o = {.mode = OCI_UNPACK_APPLY, .expect_diff_id = &im->config->diff_ids[i]};
        oci_unpack_result r;
        if (oci_unpack(blobfd, rootfd, &o, &r, err) < 0) {
            return mar_err_wrap(err, "layer %zu/%zu (%s)", i + 1, n, l->digest.str);
        }
        if ((int)r.codec != oci_layer_media_codec(l->media_type)) {
            mar_diag_warn("layer %s is labeled '%s' but is %s data", l->digest.str, l->media_type,
                          oci_codec_name(r.codec));
        }
        *ret_files += r.files;
        *ret_bytes += r.bytes;
        if (!quiet) {
            char dg[24], sz[16];
            mar_digest_short(&l->digest, dg, sizeof(dg));
            mar_format_size((int64_t)r.size, sz, sizeof(sz));
            fprintf(stderr, "%s applied: %llu entries, %s%s\n", dg, (unsigned long long)r.entries,
                    sz, r.dropped ? " (some entries dropped, see warnings)" : "");
        }
        oci_unpack_result_release(&r);
    }
    return 0;
}

int cmd_unpack(const cmd_def *def, cmd_args *args)
{
    mar_err *err = NULL;
    const char *image = args->pos.v[0];
    const char *dest = args->pos.v[1];
    bool quiet = cmd_flag(args, "quiet");
    oci_host host;
    oci_host_detect(&host);
    _cleanup_free_ oci_platform *platforms = NULL;
    size_t n_platforms = 0;
    if (cmd_parse_platforms(args, &host, &platforms, &n_platforms, &err) < 0) {
        return cmd_fail(err);
    }
    if (n_platforms > 1) {
        return cmd_usage_error(def, "unpack takes one --platform");
    }
    if (check_dest(dest, &err) < 0) {
        return cmd_fail(err);
    }
    oci_ref ref;
    if (oci_ref_parse(image, &ref, &err) < 0) {
        return cmd_fail(err);
    }
    _cleanup_free_ char *name = oci_ref_string(&ref);
    oci_ref_release(&ref);

    _cleanup_store_ reg_store *s = NULL;
    if (cmd_open_store(args, &s, &err) < 0 || reg_store_hold(s, false, true, &err) < 0) {
        return cmd_fail(err);
    }
    oci_matcher m;
    oci_matcher_only(&m, n_platforms ? &platforms[0] : &host.platform);
    reg_store_image im;
    if (cmd_stored_or_pull(args, s, image, name, &m, platforms, n_platforms, false, &im, &err) <
        0) {
        return cmd_fail(err);
    }

    _cleanup_free_ char *dcopy = mar_xstrdup(dest);
    _cleanup_free_ char *bcopy = mar_xstrdup(dest);
    const char *parent = dirname(dcopy);
    const char *base = basename(bcopy);
    _cleanup_free_ char *tmpl = mar_xasprintf("%s/.%s.mar-XXXXXX", parent, base);
    _cleanup_close_ int parentfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parentfd >= 0) {
        sweep_dead_temps(parentfd);
        flock(parentfd, LOCK_SH);
    }
    bool made = mkdtemp(tmpl) != NULL;
    int e_made = errno;
    /* Held until the process ends: the tree is being built (see sweep_dead_temps). */
    int lockfd = made ? open(tmpl, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (lockfd >= 0) {
        flock(lockfd, LOCK_EX);
    }
    if (parentfd >= 0) {
        flock(parentfd, LOCK_UN);
    }
    if (!made) {
        reg_store_image_release(&im);
        mar_err_set(&err, MAR_EIO, e_made, "cannot create a directory next to '%s'", dest);
        return cmd_fail(err);
    }
    chmod(tmpl, 0755);
    uint64_t files = 0, bytes = 0;
    int rootfd = mar_root_open(tmpl, &err);
    int rc = rootfd < 0 ? -1 : apply_layers(s, &im, rootfd, quiet, &files, &bytes, &err);
    if (rootfd >= 0) {
        close(rootfd);
    }
    if (rc == 0 && rename(tmpl, dest) < 0) {
        rc = mar_err_set(&err, MAR_EIO, errno, "cannot move the unpacked image to '%s'", dest);
    }
    if (rc < 0) {
        _cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        mar_err *re = NULL;
        if (pfd < 0 || oci_remove_at(pfd, strrchr(tmpl, '/') + 1, &re) < 0) {
            mar_diag_warn("cannot remove '%s'%s%s; remove it by hand", tmpl, re ? ": " : "",
                          re ? re->msg : "");
        }
        mar_err_free(re);
        reg_store_image_release(&im);
        return cmd_fail(err);
    }
    if (!quiet) {
        char ps[OCI_PLATFORM_STR_MAX], sz[16];
        oci_platform_format(&im.platform, ps, sizeof(ps));
        mar_format_size((int64_t)bytes, sz, sizeof(sz));
        fprintf(stderr, "mar: unpacked %s %s into '%s': %zu layers, %llu files, %s\n", name, ps,
                dest, im.manifest->n_layers, (unsigned long long)files, sz);
    }
    reg_store_image_release(&im);
    return 0;
}

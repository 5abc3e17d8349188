/* The Lima driver: a lima.yaml made for running containers of every architecture, and the
 * limactl invocations that create, start, stop, delete, inspect and enter the VM. Lima's keys are
 * those its templates/default.yaml documents; Rosetta is set through vmOpts.vz.rosetta (Lima 2;
 * the top-level `rosetta:` is deprecated, docs/internals/binfmt-and-rosetta.md §9). Nothing here
 * can run on this machine's CI (Lima needs macOS for vz, and limactl): tests check the generated
 * files against golden ones and the invocations through an injected runner (docs/mar-vm.1.md). */
#include "vm.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Debian 12's cloud images, as Lima's debian-12 template uses them. */
#define DEBIAN_IMAGE "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-"

void vm_lima_spec_init(vm_lima_spec *s)
{
    memset(s, 0, sizeof(*s));
    mar_strlcpy(s->name, "mar", sizeof(s->name));
    mar_strlcpy(s->arch, "default", sizeof(s->arch));
    s->rosetta = -1;
}

/* Lima's instance names: letters, digits, and . _ - between them. */
static bool name_ok(const char *n)
{
    if (!isalnum((unsigned char)n[0])) {
        return false;
    }
    for (const char *p = n; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) {
            return false;
        }
    }
    return !strchr("._-", n[strlen(n) - 1]);
}

/* A YAML double-quoted scalar. */
static void quoted(mar_buf *b, const char *s)
{
    mar_buf_xappend(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            mar_buf_xappend(b, "\\", 1);
        }
        if ((unsigned char)*s < 0x20) {
            continue;
        }
        mar_buf_xappend(b, s, 1);
    }
    mar_buf_xappend(b, "\"", 1);
}

static void put(mar_buf *b, const char *s)
{
    mar_buf_xappend(b, s, strlen(s));
}

static void putf(mar_buf *b, const char *fmt, ...) MAR_PRINTF(2, 3);
static void putf(mar_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = mar_xvasprintf(fmt, ap);
    va_end(ap);
    put(b, s);
    free(s);
}

/* Runs at every boot (Lima provisioning scripts must be idempotent). */
static const char provision_head[] =
        "    #!/bin/bash\n"
        "    set -eux -o pipefail\n"
        "    export DEBIAN_FRONTEND=noninteractive\n"
        "    # QEMU user mode for the architectures the CPU (and Rosetta) cannot run.\n"
        "    if [ ! -x /usr/bin/qemu-arm-static ]; then\n"
        "      apt-get update -q\n"
        "      apt-get install -y -q --no-install-recommends qemu-user-static binfmt-support\n"
        "    fi\n";

static const char provision_rosetta[] =
        "    # Rosetta handles amd64: a qemu-x86_64 entry registered after it would win\n"
        "    # (binfmt_misc tries the newest entry first), so it is turned off.\n"
        "    if [ -e /proc/sys/fs/binfmt_misc/qemu-x86_64 ]; then\n"
        "      echo 0 > /proc/sys/fs/binfmt_misc/qemu-x86_64\n"
        "    fi\n";

static const char provision_mar[] =
        "    # mar, built from the mounted source tree.\n"
        "    if ! command -v mar >/dev/null 2>&1 && [ -f /mnt/mar-src/CMakeLists.txt ]; then\n"
        "      apt-get update -q\n"
        "      apt-get install -y -q --no-install-recommends gcc make cmake pkg-config \\\n"
        "        libcurl4-openssl-dev libjansson-dev libarchive-dev libzstd-dev libisal-dev \\\n"
        "        libprotobuf-c-dev protobuf-c-compiler libssl-dev libyaml-dev\n"
        "      cmake -S /mnt/mar-src -B /var/cache/mar-build -DCMAKE_BUILD_TYPE=Release \\\n"
        "        -DMAR_TESTING=OFF\n"
        "      cmake --build /var/cache/mar-build -j \"$(nproc)\"\n"
        "      cmake --install /var/cache/mar-build --prefix /usr/local\n"
        "    fi\n";

int vm_lima_yaml(const vm_lima_spec *s, const vm_host_facts *h, const char *mar_version, char **ret,
                 mar_err **err)
{
    if (!name_ok(s->name)) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "'%s' is not a Lima instance name (letters, digits, . _ -)", s->name);
    }
    bool mac = strcmp(h->os, "darwin") == 0;
    const char *host_arch = strcmp(h->arch, "arm64") == 0   ? "aarch64"
                            : strcmp(h->arch, "amd64") == 0 ? "x86_64"
                                                            : h->arch;
    const char *arch = strcmp(s->arch, "default") == 0 ? host_arch : s->arch;
    if (strcmp(arch, "aarch64") != 0 && strcmp(arch, "x86_64") != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--arch: '%s' is not host, x86_64 or aarch64",
                           s->arch);
    }
    bool foreign = strcmp(arch, host_arch) != 0;
    const char *vm_type = s->vm_type[0] ? s->vm_type : mac && !foreign ? "vz" : "qemu";
    bool vz = strcmp(vm_type, "vz") == 0;
    if (strcmp(vm_type, "vz") != 0 && strcmp(vm_type, "qemu") != 0) {
        return mar_err_set(err, MAR_EUSAGE, 0, "--vm-type: '%s' is not vz or qemu", vm_type);
    }
    if (vz && foreign) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "vz runs only VMs of the host's architecture (%s), not %s: use the "
                           "host's arch (amd64 containers then run through Rosetta) or "
                           "--vm-type qemu",
                           host_arch, arch);
    }
    bool can_rosetta = vz && mac && strcmp(h->arch, "arm64") == 0;
    if (s->rosetta == 1 && !can_rosetta) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "Rosetta needs vmType vz on an Apple Silicon Mac with an aarch64 VM");
    }
    bool rosetta = s->rosetta == 1 || (s->rosetta < 0 && can_rosetta);
    double mem = s->memory_gib ? s->memory_gib : 4;
    if (mem < 2) {
        return mar_err_set(err, MAR_EUSAGE, 0,
                           "--memory: %g GiB is too little to run containers (at least 2; 4 or "
                           "more for emulated amd64)",
                           mem);
    }
    mar_buf b = MAR_BUF_INIT(MAR_BUF_NOCAP);
    bool arm = strcmp(arch, "aarch64") == 0;
    putf(&b,
         "# Generated by `mar vm create` (mar %s): a VM that runs containers of every\n"
         "# architecture: %s natively,%s the others through QEMU user mode.\n"
         "# Keys as documented in Lima's templates/default.yaml.\n",
         mar_version, arm ? "arm64" : "amd64", rosetta ? " amd64 through Rosetta," : "");
    if (rosetta) {
        put(&b, "minimumLimaVersion: \"2.0.0\"\n");
    }
    putf(&b, "vmType: %s\narch: %s\n", vm_type, foreign ? arch : "default");
    putf(&b, "cpus: %d\nmemory: \"%gGiB\"\ndisk: \"%dGiB\"\n", s->cpus ? s->cpus : 4, mem,
         s->disk_gib ? s->disk_gib : 100);
    putf(&b,
         "images:\n- location: \"%sarm64.qcow2\"\n  arch: aarch64\n"
         "- location: \"%samd64.qcow2\"\n  arch: x86_64\n",
         DEBIAN_IMAGE, DEBIAN_IMAGE);
    if (vz) {
        put(&b, "mountType: virtiofs\n");
    }
    put(&b, "mounts:\n- location: \"~\"\n");
    if (s->mar_source[0]) {
        put(&b, "- location: ");
        quoted(&b, s->mar_source);
        put(&b, "\n  mountPoint: /mnt/mar-src\n  writable: false\n");
    }
    /* Rootful containerd at /run/containerd/containerd.sock, where mar run looks. */
    put(&b, "containerd:\n  system: true\n  user: false\n");
    if (rosetta) {
        put(&b, "vmOpts:\n  vz:\n    rosetta:\n      enabled: true\n      binfmt: true\n");
    }
    put(&b, "provision:\n- mode: system\n  script: |\n");
    put(&b, provision_head);
    if (rosetta) {
        put(&b, provision_rosetta);
    }
    put(&b, provision_mar);
    *ret = mar_buf_detach(&b, NULL);
    return 0;
}

MAR_MUST_USE static int run_limactl(const vm_runner *r, const char *const *argv, mar_buf *out,
                                    mar_err **err)
{
    int status = 0;
    mar_buf errout = MAR_BUF_INIT(1u << 20);
    int rc = r->run(r->ctx, argv, out, out ? &errout : NULL, &status, err);
    if (rc == 0 && status != 0) {
        /* limactl's own last line says why (it logs with level=fatal msg="..."). */
        const char *last = errout.data;
        for (const char *p = errout.data; *p; p++) {
            if (*p == '\n' && p[1]) {
                last = p + 1;
            }
        }
        int ll = (int)strcspn(last, "\n");
        rc = mar_err_set(err, MAR_EFAIL, 0, "limactl %s failed (exit %d)%s%.*s", argv[1], status,
                         ll ? ": " : "", ll, last);
    }
    mar_buf_release(&errout);
    return rc;
}

int vm_lima_create(const vm_runner *r, const vm_lima_spec *s, const vm_host_facts *h,
                   const char *mar_version, const char *tmpdir, mar_err **err)
{
    _cleanup_free_ char *yaml = NULL;
    if (vm_lima_yaml(s, h, mar_version, &yaml, err) < 0) {
        return -mar_err_code(*err);
    }
    _cleanup_free_ char *path = mar_xasprintf("%s/mar-lima-XXXXXX.yaml", tmpdir);
    int fd = mkostemps(path, 5, O_CLOEXEC);
    if (fd < 0) {
        return mar_err_set(err, MAR_EIO, errno, "cannot create a file in '%s'", tmpdir);
    }
    size_t n = strlen(yaml);
    bool ok = write(fd, yaml, n) == (ssize_t)n;
    close(fd);
    if (!ok) {
        unlink(path);
        return mar_err_set(err, MAR_EIO, errno, "cannot write '%s'", path);
    }
    _cleanup_free_ char *name = mar_xasprintf("--name=%s", s->name);
    const char *argv[] = {"limactl", "create", name, "--tty=false", path, NULL};
    int rc = run_limactl(r, argv, NULL, err);
    unlink(path);
    return rc;
}

int vm_lima_verb(const vm_runner *r, const char *verb, const char *name, mar_err **err)
{
    if (!name_ok(name)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not a Lima instance name", name);
    }
    const char *argv[5] = {"limactl", verb, NULL};
    size_t n = 2;
    if (strcmp(verb, "start") == 0) {
        argv[n++] = "--tty=false";
    } else if (strcmp(verb, "delete") == 0) {
        argv[n++] = "--force";
    }
    argv[n++] = name;
    argv[n] = NULL;
    return run_limactl(r, argv, NULL, err);
}

static void str_field(json_t *j, const char *key, char *dst, size_t n)
{
    const char *v = json_string_value(json_object_get(j, key));
    mar_strlcpy(dst, v ? v : "", n);
}

/* `limactl list --json [NAME]`: one object per line (Lima's store.Instance). */
MAR_MUST_USE static int list(const vm_runner *r, const char *name, vm_lima_status **ret,
                             size_t *ret_n, mar_err **err)
{
    mar_buf out = MAR_BUF_INIT(4u << 20);
    const char *argv[] = {"limactl", "list", "--json", name, NULL};
    if (run_limactl(r, argv, &out, err) < 0) {
        mar_buf_release(&out);
        return -mar_err_code(*err);
    }
    /* Split in place: an empty answer is the static empty string, which the loop never writes. */
    vm_lima_status *v = NULL;
    size_t n = 0;
    int rc = 0;
    for (char *line = (char *)out.data; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        if (*line) {
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            if (!j || !json_string_value(json_object_get(j, "name"))) {
                rc = mar_err_set(err, MAR_EINTEGRITY, 0, "limactl list --json: %s",
                                 j ? "an instance without a name" : je.text);
                json_decref(j);
                break;
            }
            v = mar_xrealloc(v, (n + 1) * sizeof(*v));
            vm_lima_status *st = &v[n++];
            memset(st, 0, sizeof(*st));
            st->exists = true;
            str_field(j, "name", st->name, sizeof(st->name));
            str_field(j, "status", st->status, sizeof(st->status));
            str_field(j, "dir", st->dir, sizeof(st->dir));
            str_field(j, "vmType", st->vm_type, sizeof(st->vm_type));
            str_field(j, "arch", st->arch, sizeof(st->arch));
            st->cpus = (int)json_integer_value(json_object_get(j, "cpus"));
            st->memory_gib = (double)json_integer_value(json_object_get(j, "memory")) /
                             (1024.0 * 1024 * 1024);
            st->disk_gib =
                    (double)json_integer_value(json_object_get(j, "disk")) / (1024.0 * 1024 * 1024);
            json_decref(j);
        }
        line = next;
    }
    mar_buf_release(&out);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

int vm_lima_list(const vm_runner *r, vm_lima_status **ret, size_t *ret_n, mar_err **err)
{
    return list(r, NULL, ret, ret_n, err);
}

int vm_lima_status_get(const vm_runner *r, const char *name, vm_lima_status *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    if (!name_ok(name)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not a Lima instance name", name);
    }
    vm_lima_status *v;
    size_t n;
    if (list(r, name, &v, &n, err) < 0) {
        return -mar_err_code(*err);
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            *ret = v[i];
        }
    }
    free(v);
    return 0;
}

int vm_lima_shell(const vm_runner *r, const char *name, const char *const *cmd, mar_err **err)
{
    if (!name_ok(name)) {
        return mar_err_set(err, MAR_EUSAGE, 0, "'%s' is not a Lima instance name", name);
    }
    size_t n = 0;
    while (cmd && cmd[n]) {
        n++;
    }
    const char **argv = mar_xcalloc(n + 4, sizeof(*argv));
    argv[0] = "limactl";
    argv[1] = "shell";
    argv[2] = name;
    for (size_t i = 0; i < n; i++) {
        argv[3 + i] = cmd[i];
    }
    int rc = r->exec(r->ctx, argv, err);
    free(argv);
    return rc;
}

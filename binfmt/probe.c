/* The exec probe (docs/internals/binfmt-and-rosetta.md §7 step 4): a tiny static program per
 * architecture, written here as bytes, that reads one byte from stdin and exits 0. It is executed
 * from a memfd; while it waits on stdin, /proc/<pid>/exe names what really runs it: the probe
 * itself (native) or a binfmt_misc interpreter (QEMU names the interpreter there, and fakes
 * /proc/self/exe inside, so the probe is never asked). This is the only reliable test: kernels
 * built with IA32 emulation can still refuse 32-bit x86, and many arm64 CPUs lack AArch32. */
#include "binfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* read(0, sp-16, 1); exit(0) for each architecture, with the ELF e_flags its loaders want. */
typedef struct probe_code {
    const unsigned char *code;
    size_t len;
    uint32_t e_flags;
} probe_code;

static const unsigned char code_amd64[] = {
        0x31, 0xc0,                   /* xor eax, eax        (read) */
        0x31, 0xff,                   /* xor edi, edi        (fd 0) */
        0x48, 0x8d, 0x74, 0x24, 0xf0, /* lea rsi, [rsp-16] */
        0xba, 0x01, 0x00, 0x00, 0x00, /* mov edx, 1 */
        0x0f, 0x05,                   /* syscall */
        0xb8, 0x3c, 0x00, 0x00, 0x00, /* mov eax, 60         (exit) */
        0x31, 0xff,                   /* xor edi, edi */
        0x0f, 0x05,                   /* syscall */
};
static const unsigned char code_386[] = {
        0xb8, 0x03, 0x00, 0x00, 0x00, /* mov eax, 3 (read) */
        0x31, 0xdb,                   /* xor ebx, ebx */
        0x8d, 0x4c, 0x24, 0xf0,       /* lea ecx, [esp-16] */
        0xba, 0x01, 0x00, 0x00, 0x00, /* mov edx, 1 */
        0xcd, 0x80,                   /* int 0x80 */
        0xb8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 (exit) */
        0x31, 0xdb,                   /* xor ebx, ebx */
        0xcd, 0x80,                   /* int 0x80 */
};
/* Little-endian 32-bit instruction words. */
#define W(x)                                                                                       \
    (unsigned char)((x)&0xff), (unsigned char)(((x) >> 8) & 0xff),                                 \
            (unsigned char)(((x) >> 16) & 0xff), (unsigned char)(((x) >> 24) & 0xff)
/* Big-endian words. */
#define B(x)                                                                                       \
    (unsigned char)(((x) >> 24) & 0xff), (unsigned char)(((x) >> 16) & 0xff),                      \
            (unsigned char)(((x) >> 8) & 0xff), (unsigned char)((x)&0xff)

static const unsigned char code_arm64[] = {
        W(0xd2800000), /* mov x0, #0 */
        W(0xd10043e1), /* sub x1, sp, #16 */
        W(0xd2800022), /* mov x2, #1 */
        W(0xd28007e8), /* mov x8, #63  (read) */
        W(0xd4000001), /* svc #0 */
        W(0xd2800000), /* mov x0, #0 */
        W(0xd2800ba8), /* mov x8, #93  (exit) */
        W(0xd4000001), /* svc #0 */
};
static const unsigned char code_arm[] = {
        W(0xe3a00000), /* mov r0, #0 */
        W(0xe24d1010), /* sub r1, sp, #16 */
        W(0xe3a02001), /* mov r2, #1 */
        W(0xe3a07003), /* mov r7, #3  (read) */
        W(0xef000000), /* svc #0 */
        W(0xe3a00000), /* mov r0, #0 */
        W(0xe3a07001), /* mov r7, #1  (exit) */
        W(0xef000000), /* svc #0 */
};
#define PPC_PROBE(E)                                                                               \
    E(0x38000003),         /* li r0, 3      (read) */                                              \
            E(0x38600000), /* li r3, 0 */                                                          \
            E(0x3881fff0), /* addi r4, r1, -16 */                                                  \
            E(0x38a00001), /* li r5, 1 */                                                          \
            E(0x44000002), /* sc */                                                                \
            E(0x38000001), /* li r0, 1      (exit) */                                              \
            E(0x38600000), /* li r3, 0 */                                                          \
            E(0x44000002)  /* sc */
static const unsigned char code_ppc64le[] = {PPC_PROBE(W)};
static const unsigned char code_ppc64[] = {PPC_PROBE(B)};
static const unsigned char code_s390x[] = {
        0xa7, 0x29, 0x00, 0x00,             /* lghi %r2, 0 */
        0xe3, 0x30, 0xff, 0xf0, 0xff, 0x71, /* lay %r3, -16(%r15) */
        0xa7, 0x49, 0x00, 0x01,             /* lghi %r4, 1 */
        0x0a, 0x03,                         /* svc 3   (read) */
        0xa7, 0x29, 0x00, 0x00,             /* lghi %r2, 0 */
        0x0a, 0x01,                         /* svc 1   (exit) */
};
static const unsigned char code_riscv64[] = {
        W(0x00000513), /* li a0, 0 */
        W(0xff010593), /* addi a1, sp, -16 */
        W(0x00100613), /* li a2, 1 */
        W(0x03f00893), /* li a7, 63  (read) */
        W(0x00000073), /* ecall */
        W(0x00000513), /* li a0, 0 */
        W(0x05d00893), /* li a7, 93  (exit) */
        W(0x00000073), /* ecall */
};
#define MIPS_PROBE(E)                                                                              \
    E(0x34040000),         /* ori a0, zero, 0 */                                                   \
            E(0x67a5fff0), /* daddiu a1, sp, -16 */                                                \
            E(0x34060001), /* ori a2, zero, 1 */                                                   \
            E(0x34021388), /* ori v0, zero, 5000   (n64 read) */                                   \
            E(0x0000000c), /* syscall */                                                           \
            E(0x34040000), /* ori a0, zero, 0 */                                                   \
            E(0x340213c2), /* ori v0, zero, 5058   (n64 exit) */                                   \
            E(0x0000000c)  /* syscall */
static const unsigned char code_mips64le[] = {MIPS_PROBE(W)};
static const unsigned char code_mips64[] = {MIPS_PROBE(B)};
static const unsigned char code_loong64[] = {
        W(0x02800004), /* addi.w a0, zero, 0 */
        W(0x02ffc065), /* addi.d a1, sp, -16 */
        W(0x02800406), /* addi.w a2, zero, 1 */
        W(0x0280fc0b), /* addi.w a7, zero, 63  (read) */
        W(0x002b0000), /* syscall 0 */
        W(0x02800004), /* addi.w a0, zero, 0 */
        W(0x0281740b), /* addi.w a7, zero, 93  (exit) */
        W(0x002b0000), /* syscall 0 */
};

#define P(c, flags)                                                                                \
    {                                                                                              \
        c, sizeof(c), flags                                                                        \
    }
static const probe_code probes[BINFMT_ARCH_COUNT] = {
        [BINFMT_ARCH_AMD64] = P(code_amd64, 0),
        [BINFMT_ARCH_386] = P(code_386, 0),
        [BINFMT_ARCH_ARM64] = P(code_arm64, 0),
        /* EABI version 5, hard float: what Debian's armhf binaries carry. */
        [BINFMT_ARCH_ARM] = P(code_arm, 0x05000400),
        /* ELFv2: the entry point is code, not a function descriptor. */
        [BINFMT_ARCH_PPC64LE] = P(code_ppc64le, 2),
        [BINFMT_ARCH_PPC64] = P(code_ppc64, 2),
        [BINFMT_ARCH_S390X] = P(code_s390x, 0),
        /* RVC + double-float ABI. */
        [BINFMT_ARCH_RISCV64] = P(code_riscv64, 0x5),
        /* n64, MIPS64r2, PIC: as Debian's mips64el binaries. */
        [BINFMT_ARCH_MIPS64LE] = P(code_mips64le, 0x80000007),
        [BINFMT_ARCH_MIPS64] = P(code_mips64, 0x80000007),
        /* LP64D, object ABI v1. */
        [BINFMT_ARCH_LOONG64] = P(code_loong64, 0x43),
};

static void put16(unsigned char *p, bool be, uint16_t v)
{
    p[be ? 1 : 0] = (unsigned char)(v & 0xff);
    p[be ? 0 : 1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, bool be, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[be ? 3 - i : i] = (unsigned char)(v >> (8 * i));
    }
}

static void put64(unsigned char *p, bool be, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[be ? 7 - i : i] = (unsigned char)(v >> (8 * i));
    }
}

void binfmt_probe_image(const binfmt_arch *a, mar_buf *ret)
{
    const probe_code *pc = &probes[a->id];
    bool be = a->elf->elf_data == 2;
    bool is64 = a->elf->elf_class == 2;
    size_t eh = is64 ? 64 : 52, ph = is64 ? 56 : 32;
    size_t total = eh + ph + pc->len;
    uint64_t base = 0x400000;
    unsigned char img[256];
    memset(img, 0, sizeof(img));
    binfmt_synthetic_header(a, 2, img);
    /* ELF header past e_machine (ELF spec "ELF Header"). */
    unsigned char *p = img + 20;
    put32(p, be, 1); /* e_version */
    p += 4;
    if (is64) {
        put64(p, be, base + eh + ph); /* e_entry */
        put64(p + 8, be, eh);         /* e_phoff */
        put64(p + 16, be, 0);         /* e_shoff */
        p += 24;
    } else {
        put32(p, be, (uint32_t)(base + eh + ph));
        put32(p + 4, be, (uint32_t)eh);
        put32(p + 8, be, 0);
        p += 12;
    }
    put32(p, be, pc->e_flags);
    put16(p + 4, be, (uint16_t)eh);
    put16(p + 6, be, (uint16_t)ph);
    put16(p + 8, be, 1); /* e_phnum */
    /* e_shentsize, e_shnum, e_shstrndx stay 0. */

    /* One PT_LOAD, R+X, covering the whole file. */
    unsigned char *h = img + eh;
    put32(h, be, 1);
    if (is64) {
        put32(h + 4, be, 5);      /* p_flags */
        put64(h + 8, be, 0);      /* p_offset */
        put64(h + 16, be, base);  /* p_vaddr */
        put64(h + 24, be, base);  /* p_paddr */
        put64(h + 32, be, total); /* p_filesz */
        put64(h + 40, be, total); /* p_memsz */
        put64(h + 48, be, 0x10000);
    } else {
        put32(h + 4, be, 0);
        put32(h + 8, be, (uint32_t)base);
        put32(h + 12, be, (uint32_t)base);
        put32(h + 16, be, (uint32_t)total);
        put32(h + 20, be, (uint32_t)total);
        put32(h + 24, be, 5);
        put32(h + 28, be, 0x1000);
    }
    memcpy(img + eh + ph, pc->code, pc->len);
    mar_buf_release(ret);
    mar_buf_init(ret, sizeof(img));
    /* total fits img (the memcpy above relies on it), which is the cap: this cannot fail. */
    mar_ignore(mar_buf_append(ret, img, total));
}

const char *binfmt_probe_result_name(binfmt_probe_result r)
{
    switch (r) {
    case BINFMT_PROBE_NATIVE:
        return "native";
    case BINFMT_PROBE_EMULATED:
        return "works";
    case BINFMT_PROBE_ENOEXEC:
        return "exec format error";
    case BINFMT_PROBE_ENOENT:
        return "interpreter not found";
    case BINFMT_PROBE_FAILED:
        break;
    }
    return "failed";
}

int binfmt_probe_run(const binfmt_arch *a, binfmt_probe *ret, mar_err **err)
{
    memset(ret, 0, sizeof(*ret));
    mar_buf img = MAR_BUF_INIT(0);
    binfmt_probe_image(a, &img);
    /* Close-on-exec as every fd of mar's: only the probe's own child keeps it (exec_fd), since
     * an interpreter gets the program as /dev/fd/N and must open it. */
    _cleanup_close_ int mfd = memfd_create("mar-probe", MFD_CLOEXEC);
    if (mfd < 0) {
        mar_buf_release(&img);
        return mar_err_set(err, MAR_EFAIL, errno, "cannot create the %s probe", a->elf->arch);
    }
    ssize_t w = write(mfd, img.data, img.len);
    mar_buf_release(&img);
    if (w < 0) {
        return mar_err_set(err, MAR_EFAIL, errno, "cannot write the %s probe", a->elf->arch);
    }
    fchmod(mfd, 0700);
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0) {
        return mar_err_set(err, MAR_EFAIL, errno, "cannot create a pipe");
    }
    _cleanup_close_ int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    char *argv[] = {"mar-probe", NULL};
    char *envp[] = {NULL};
    mar_spawn_opts so = MAR_SPAWN_OPTS_INIT;
    so.stdin_fd = in[0];
    so.stdout_fd = devnull;
    so.stderr_fd = devnull;
    so.envp = envp;
    so.exec_fd = mfd;
    pid_t pid;
    int exec_errno = 0;
    int rc = mar_spawn(argv, &so, &pid, &exec_errno, err);
    close(in[0]);
    if (rc < 0) {
        close(in[1]);
        return mar_err_wrap(err, "the %s probe", a->elf->arch);
    }
    if (exec_errno) {
        close(in[1]);
        ret->sys_errno = exec_errno;
        ret->result = exec_errno == ENOEXEC  ? BINFMT_PROBE_ENOEXEC
                      : exec_errno == ENOENT ? BINFMT_PROBE_ENOENT
                                             : BINFMT_PROBE_FAILED;
        return 0;
    }
    /* The exec happened: see what runs the program while it waits on stdin. */
    char link[64], exe[sizeof(ret->interpreter)];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof(exe) - 1);
    if (n >= 0) {
        exe[n] = '\0';
        mar_strlcpy(ret->interpreter, exe, sizeof(ret->interpreter));
    }
    close(in[1]);
    int st = 0;
    uint64_t deadline = mar_now_ms() + 10000;
    pid_t wr;
    while ((wr = waitpid(pid, &st, WNOHANG)) == 0 && mar_now_ms() < deadline) {
        poll(NULL, 0, 5);
    }
    if (wr == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    ret->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (ret->status != 0) {
        ret->result = BINFMT_PROBE_FAILED;
    } else if (mar_str_startswith(ret->interpreter, "/memfd:mar-probe")) {
        ret->result = BINFMT_PROBE_NATIVE;
        ret->interpreter[0] = '\0';
    } else {
        ret->result = BINFMT_PROBE_EMULATED;
    }
    return 0;
}

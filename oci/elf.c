/* A small, defensive ELF reader for the first bytes of a file (docs/internals/platforms.md §10):
 * class, endianness and machine -> OCI architecture, the Arm float ABI, static vs dynamic and the
 * PT_INTERP loader, and the x86 ISA level note. Every offset is checked against the buffer before
 * use; anything outside it only marks the result incomplete. Hostile input never crashes it
 * (tests/unit/test-elf.c, fuzz/fuzz-elf.c). */
#include "oci.h"

#include <elf.h>
#include <string.h>

typedef struct rd {
    const unsigned char *p;
    size_t len;
    bool be;
} rd;

static bool in(const rd *r, uint64_t off, uint64_t n)
{
    return off <= r->len && n <= r->len - off;
}

static uint16_t u16(const rd *r, uint64_t off)
{
    const unsigned char *p = r->p + off;
    return r->be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t u32(const rd *r, uint64_t off)
{
    const unsigned char *p = r->p + off;
    return r->be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                 : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t u64(const rd *r, uint64_t off)
{
    uint64_t hi = u32(r, off + (r->be ? 0 : 4)), lo = u32(r, off + (r->be ? 4 : 0));
    return hi << 32 | lo;
}

static void set_arch(oci_elf_info *e)
{
    const oci_elf_arch *a = oci_elf_arch_find(e->elf_class, e->elf_data, e->e_machine);
    mar_strlcpy(e->arch, a ? a->arch : "", sizeof(e->arch));
}

/* Walks a note segment for the GNU property note and its x86 ISA level. */
static void scan_notes(const rd *r, uint64_t off, uint64_t size, oci_elf_info *e)
{
    if (off > r->len) {
        e->truncated = true;
        return;
    }
    if (size > r->len - off) {
        e->truncated = true;
        size = r->len - off;
    }
    uint64_t end = off + size; /* <= r->len: no overflow below */
    uint64_t align = e->elf_class == ELFCLASS64 ? 8 : 4;
    while (end - off >= 12) {
        uint64_t namesz = u32(r, off), descsz = u32(r, off + 4);
        uint32_t type = u32(r, off + 8);
        uint64_t name_off = off + 12;
        uint64_t nlen = (namesz + 3) & ~(uint64_t)3;
        if (nlen > end - name_off) {
            return;
        }
        uint64_t desc_off = name_off + nlen;
        if (descsz > end - desc_off) {
            return;
        }
        if (type == NT_GNU_PROPERTY_TYPE_0 && namesz == 4 &&
            memcmp(r->p + name_off, "GNU", 4) == 0) {
            /* Properties: pr_type, pr_datasz, data padded to the class alignment. */
            uint64_t p = desc_off, pend = desc_off + descsz;
            while (pend - p >= 8) {
                uint32_t pt = u32(r, p), sz = u32(r, p + 4);
                if (sz > pend - p - 8) {
                    break;
                }
                /* x86-64 psABI: bits 1/2/4/8 = baseline/v2/v3/v4. */
                if (pt == GNU_PROPERTY_X86_ISA_1_NEEDED && sz >= 4) {
                    uint32_t bits = u32(r, p + 8);
                    int level = 0;
                    for (int b = 0; b < 4; b++) {
                        if (bits & (1u << b)) {
                            level = b + 1;
                        }
                    }
                    e->x86_isa_level = level;
                }
                uint64_t step = 8 + ((sz + align - 1) & ~(align - 1));
                if (step > pend - p) {
                    break;
                }
                p += step;
            }
        }
        uint64_t dlen = (descsz + align - 1) & ~(align - 1);
        if (dlen > end - desc_off) {
            return;
        }
        off = desc_off + dlen;
    }
}

static void set_libc(oci_elf_info *e)
{
    const char *base = strrchr(e->interp, '/');
    base = base ? base + 1 : e->interp;
    if (mar_str_startswith(base, "ld-musl-")) {
        mar_strlcpy(e->libc, "musl", sizeof(e->libc));
    } else if (mar_str_startswith(base, "ld-linux") || mar_str_startswith(base, "ld.so") ||
               mar_str_startswith(base, "ld64.so")) {
        mar_strlcpy(e->libc, "glibc", sizeof(e->libc));
    }
}

void oci_elf_parse(const void *buf, size_t len, oci_elf_info *e)
{
    memset(e, 0, sizeof(*e));
    const unsigned char *p = buf;
    if (len < 16 || memcmp(p,
                           "\x7f"
                           "ELF",
                           4) != 0) {
        return;
    }
    e->elf_class = p[4];
    e->elf_data = p[5];
    if ((e->elf_class != 1 && e->elf_class != 2) || (e->elf_data != 1 && e->elf_data != 2)) {
        return;
    }
    rd r = {.p = p, .len = len, .be = e->elf_data == ELFDATA2MSB};
    bool is64 = e->elf_class == ELFCLASS64;
    size_t ehsize = is64 ? 64 : 52;
    if (!in(&r, 0, ehsize)) {
        e->is_elf = true;
        e->truncated = true;
        if (len >= 20) {
            e->e_type = u16(&r, 16);
            e->e_machine = u16(&r, 18);
            set_arch(e);
        }
        return;
    }
    e->is_elf = true;
    e->e_type = u16(&r, 16);
    e->e_machine = u16(&r, 18);
    set_arch(e);
    uint64_t phoff = is64 ? u64(&r, 32) : u32(&r, 28);
    e->e_flags = u32(&r, is64 ? 48 : 36);
    uint16_t phentsize = u16(&r, is64 ? 54 : 42);
    uint16_t phnum = u16(&r, is64 ? 56 : 44);
    if (e->e_machine == EM_ARM) {
        if (e->e_flags & EF_ARM_ABI_FLOAT_HARD) {
            mar_strlcpy(e->float_abi, "hard", sizeof(e->float_abi));
        } else if (e->e_flags & EF_ARM_ABI_FLOAT_SOFT) {
            mar_strlcpy(e->float_abi, "soft", sizeof(e->float_abi));
        }
    }
    if (phnum == 0 || phentsize < (is64 ? 56 : 32)) {
        return;
    }
    for (uint32_t i = 0; i < phnum; i++) {
        uint64_t ph = phoff + (uint64_t)i * phentsize;
        if (phoff > r.len || !in(&r, ph, is64 ? 56 : 32)) {
            e->truncated = true;
            return;
        }
        uint32_t type = u32(&r, ph);
        uint64_t off = is64 ? u64(&r, ph + 8) : u32(&r, ph + 4);
        uint64_t filesz = is64 ? u64(&r, ph + 32) : u32(&r, ph + 16);
        if (type == PT_INTERP) {
            e->dynamic = true;
            if (!in(&r, off, filesz)) {
                e->truncated = true;
                continue;
            }
            if (filesz == 0 || filesz > sizeof(e->interp)) {
                continue;
            }
            size_t n = strnlen((const char *)p + off, (size_t)filesz);
            if (n == 0 || n >= sizeof(e->interp)) {
                continue;
            }
            memcpy(e->interp, p + off, n);
            e->interp[n] = '\0';
            set_libc(e);
        } else if (type == PT_GNU_PROPERTY || (type == PT_NOTE && !e->x86_isa_level)) {
            scan_notes(&r, off, filesz, e);
        }
    }
}

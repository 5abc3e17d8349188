/* fuzz_passwd: an image's /etc/passwd and /etc/group as `mar run --user` resolves them. The input
 * is USER[:GROUP], then the passwd text, then the group text, separated by NUL bytes (a missing
 * part is a missing file). */
#include "fuzz.h"
#include "vm/vm.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 2);
    memcpy(s, data, size);
    s[size] = '\0';
    s[size + 1] = '\0';
    char *spec = s;
    char *end = s + size;
    char *passwd = memchr(spec, '\0', size + 1);
    passwd = passwd < end ? passwd + 1 : NULL;
    char *group = passwd ? memchr(passwd, '\0', (size_t)(end - passwd) + 1) : NULL;
    group = group && group < end ? group + 1 : NULL;
    vm_user u;
    mar_err *e = NULL;
    /* What the runtime spec is built from must stay within its bounds. */
    if (vm_user_resolve(spec, passwd, group, &u, &e) == 0 &&
        (strnlen(u.home, sizeof(u.home)) == sizeof(u.home) ||
         u.n_gids > sizeof(u.gids) / sizeof(u.gids[0]))) {
        abort();
    }
    mar_err_free(e);
    free(s);
    return 0;
}

#define SEED(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

void mar_fuzz_seeds(void (*emit)(const void *data, size_t size))
{
    static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                                 "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                 "# a comment\n"
                                 "\n"
                                 "app:x:1000:1000:App,,,:/home/app:/bin/bash\n"
                                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    static const char group[] = "root:x:0:\n"
                                "wheel:x:10:root,app\n"
                                "app:x:1000:\n"
                                "docker:x:999:app,,daemon\n"
                                "nogroup:x:65534:\n";
    static const struct {
        const char *data;
        size_t size;
    } specs[] = {
            SEED("app"),    SEED("app:wheel"), SEED("1000"), SEED("4242:10"),
            SEED("nobody"), SEED("root:999"),  SEED(""),     SEED("missing:"),
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        size_t n = specs[i].size + 1 + sizeof(passwd) - 1 + 1 + sizeof(group) - 1;
        char *buf = malloc(n);
        memcpy(buf, specs[i].data, specs[i].size);
        buf[specs[i].size] = '\0';
        memcpy(buf + specs[i].size + 1, passwd, sizeof(passwd) - 1);
        buf[specs[i].size + sizeof(passwd)] = '\0';
        memcpy(buf + specs[i].size + 1 + sizeof(passwd), group, sizeof(group) - 1);
        emit(buf, n);
        free(buf);
    }
    /* Malformed lines: too few fields, ids out of range, no newline at the end. */
    static const char odd[] = "app\0app:x:1000\n:x:::\napp:x:-1:0::\napp:x:4294967295:1:a:b:c:d:e:f"
                              "\0app:x:1:\n:::\napp";
    emit(odd, sizeof(odd) - 1);
}

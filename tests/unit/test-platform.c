/* The platform model against containerd's semantics (docs/internals/platforms.md §2-§7): parse,
 * normalize, match, the fallback ladder, index ordering and host variant detection. Each table row
 * is one case; every failing row is reported before the test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "oci/oci.h"
#include "tbuf.h"

static oci_platform plat(const char *os, const char *arch, const char *variant)
{
    oci_platform p = {0};
    mar_strlcpy(p.os, os, sizeof(p.os));
    mar_strlcpy(p.arch, arch, sizeof(p.arch));
    mar_strlcpy(p.variant, variant, sizeof(p.variant));
    return p;
}

static oci_platform parse_or_die(const char *spec)
{
    oci_platform host = plat("linux", "amd64", "");
    oci_platform p;
    mar_err *e = NULL;
    if (oci_platform_parse(spec, &host, &p, &e) < 0) {
        print_error("cannot parse '%s': %s\n", spec, e->msg);
        mar_err_free(e);
        fail();
    }
    return p;
}

static const struct {
    const char *spec;
    const char *host; /* "os/arch/variant" for one-word specs, NULL = linux/amd64 */
    const char *want; /* formatted result, NULL = error */
} parse_cases[] = {
        {"linux/arm64", NULL, "linux/arm64"},
        {"linux/arm64/v8", NULL, "linux/arm64/v8"},
        {"linux/aarch64", NULL, "linux/arm64"},
        {"linux/arm", NULL, "linux/arm"},
        {"linux/armhf", NULL, "linux/arm"},
        {"arm", NULL, "linux/arm"},
        {"linux/armel", NULL, "linux/arm/v6"},
        {"linux/arm/7", NULL, "linux/arm/v7"},
        {"linux/arm/5", NULL, "linux/arm/v5"},
        {"linux/x86_64", NULL, "linux/amd64"},
        {"linux/x86-64", NULL, "linux/amd64"},
        {"linux/amd64/v1", NULL, "linux/amd64"},
        {"linux/amd64/v3", NULL, "linux/amd64/v3"},
        {"linux/i386", NULL, "linux/386"},
        {"i386", NULL, "linux/386"},
        {"arm64", NULL, "linux/arm64"},
        {"linux", NULL, "linux/amd64"},
        {"linux", "linux/arm/v6", "linux/arm/v6"},
        {"linux", "linux/arm/v7", "linux/arm"},
        {"Linux/AMD64", NULL, "linux/amd64"},
        {"macos/arm64", NULL, "darwin/arm64"},
        {"linux/arm64/8", NULL, "linux/arm64/v8"},
        {"linux/arm64/v9.0", NULL, "linux/arm64/v9"},
        {"linux/ppc64le", NULL, "linux/ppc64le"},
        {"linux/s390x", NULL, "linux/s390x"},
        {"windows(10.0.17763+win32k)/amd64", NULL, "windows/amd64"},
        {"linux/*", NULL, NULL},
        {"linux/arm64/v8/x", NULL, NULL},
        {"foo", NULL, NULL},
        {"", NULL, NULL},
        {"linux//arm64", NULL, NULL},
        {"linux/arm 64", NULL, NULL},
        {"linux/arm64/", NULL, NULL},
        {"../../etc", NULL, NULL},
        {"linux/../amd64", NULL, NULL},
        {"./.", NULL, NULL},
};

static void test_parse(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(parse_cases); i++) {
        oci_platform host = plat("linux", "amd64", "");
        if (parse_cases[i].host) {
            mar_err *e = NULL;
            oci_platform empty = {0};
            assert_int_equal(oci_platform_parse(parse_cases[i].host, &empty, &host, &e), 0);
        }
        oci_platform p;
        mar_err *e = NULL;
        int rc = oci_platform_parse(parse_cases[i].spec, &host, &p, &e);
        char got[OCI_PLATFORM_STR_MAX] = "(error)";
        if (rc == 0) {
            oci_platform_format(&p, got, sizeof(got));
        } else {
            assert_int_equal(mar_err_code(e), MAR_EUSAGE);
            mar_err_free(e);
        }
        const char *want = parse_cases[i].want ? parse_cases[i].want : "(error)";
        if (strcmp(got, want) != 0) {
            print_error("parse '%s': got %s, want %s\n", parse_cases[i].spec, got, want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_parse_os_options(void **state)
{
    (void)state;
    oci_platform p = parse_or_die("windows(10.0.17763+win32k+a)/amd64");
    assert_string_equal(p.os_version, "10.0.17763");
    assert_string_equal(p.features, "a+win32k");
    char buf[OCI_PLATFORM_STR_MAX];
    oci_platform_format_all(&p, buf, sizeof(buf));
    assert_string_equal(buf, "windows(10.0.17763+a+win32k)/amd64");
    p = parse_or_die("linux(5%2F3)/arm64");
    assert_string_equal(p.os_version, "5/3");
}

static const struct {
    const char *os, *arch, *variant, *want;
} normalize_cases[] = {
        {"", "amd64", "", "linux/amd64"},
        {"linux", "aarch64", "8", "linux/arm64"},
        {"linux", "arm64", "v8.0", "linux/arm64"},
        {"linux", "arm64", "9", "linux/arm64/v9"},
        {"linux", "arm64", "v8.2", "linux/arm64/v8.2"},
        {"linux", "arm", "", "linux/arm/v7"},
        {"linux", "arm", "6", "linux/arm/v6"},
        {"linux", "arm", "8", "linux/arm/v8"},
        {"linux", "armhf", "", "linux/arm/v7"},
        {"linux", "armel", "", "linux/arm/v6"},
        {"LINUX", "X86_64", "V1", "linux/amd64"},
        {"linux", "x86_64", "v2", "linux/amd64/v2"},
        {"linux", "i386", "v7", "linux/386"},
        {"linux", "riscv64", "", "linux/riscv64"},
        {"macos", "arm64", "", "darwin/arm64"},
};

static void test_normalize(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(normalize_cases); i++) {
        oci_platform p =
                plat(normalize_cases[i].os, normalize_cases[i].arch, normalize_cases[i].variant);
        oci_platform_normalize(&p, &p);
        char got[OCI_PLATFORM_STR_MAX];
        oci_platform_format(&p, got, sizeof(got));
        if (strcmp(got, normalize_cases[i].want) != 0) {
            print_error("normalize %s/%s/%s: got %s, want %s\n", normalize_cases[i].os,
                        normalize_cases[i].arch, normalize_cases[i].variant, got,
                        normalize_cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static const struct {
    const char *want, *have;
    bool match;
} match_cases[] = {
        {"linux/arm64", "linux/arm64/v8", true},
        {"linux/arm64/v8", "linux/arm64", true},
        {"linux/arm", "linux/arm/v7", true},
        {"linux/arm/v7", "linux/arm", true},
        {"linux/amd64", "linux/amd64/v1", true},
        {"linux/amd64", "linux/amd64/v2", false},
        {"linux/amd64", "linux/386", false},
        {"linux/aarch64", "linux/arm64", true},
        {"linux/arm/v6", "linux/arm/v7", false},
        {"linux/amd64", "windows/amd64", false},
        {"windows(+a+b)/amd64", "windows(+a)/amd64", true},
        {"windows(+a)/amd64", "windows(+c)/amd64", false},
        {"windows(10.0.1)/amd64", "windows(10.0.2)/amd64", false},
        /* containerd strips win32k from a Windows candidate (windowsStripFeaturesMatcher). */
        {"windows(10.0.17763)/amd64", "windows(10.0.17763.1+win32k)/amd64", true},
        {"windows/amd64", "windows(+a+win32k)/amd64", false},
        {"windows(+a)/amd64", "windows(+win32k+a)/amd64", true},
        {"linux/amd64", "linux(+win32k)/amd64", false},
};

static void test_match(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(match_cases); i++) {
        oci_platform w = parse_or_die(match_cases[i].want);
        oci_platform h = parse_or_die(match_cases[i].have);
        if (oci_platform_matches(&w, &h) != match_cases[i].match) {
            print_error("match %s vs %s: want %d\n", match_cases[i].want, match_cases[i].have,
                        match_cases[i].match);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static const struct {
    const char *requested, *candidate;
    bool strict;
    bool accepted;
} only_cases[] = {
        {"linux/amd64", "linux/386", false, true},
        {"linux/amd64", "linux/amd64/v2", false, false},
        {"linux/amd64/v2", "linux/amd64", false, true},
        {"linux/amd64/v3", "linux/amd64/v2", false, true},
        {"linux/amd64/v3", "linux/386", false, true},
        {"linux/arm64", "linux/arm/v8", false, true},
        {"linux/arm64", "linux/arm/v7", false, true},
        {"linux/arm64", "linux/arm/v5", false, true},
        {"linux/arm/v6", "linux/arm/v7", false, false},
        {"linux/arm/v6", "linux/arm/v5", false, true},
        {"linux/arm/v8", "linux/arm/v7", false, true},
        {"linux/arm", "linux/arm/v6", false, true},
        {"linux/386", "linux/amd64", false, false},
        {"linux/arm64/v8.2", "linux/arm64/v8.1", false, true},
        {"linux/arm64/v8.2", "linux/arm64", false, true},
        {"linux/arm64/v8.2", "linux/arm64/v8.3", false, false},
        {"linux/arm64/v9", "linux/arm64/v8.5", false, true},
        {"linux/arm64/v9", "linux/arm64/v8.6", false, false},
        {"linux/arm64/v9.2", "linux/arm64/v8.7", false, true},
        {"linux/arm64/v9.7", "linux/arm64/v8.9", false, true},
        {"linux/arm64/v10", "linux/arm64", false, false},
        {"linux/amd64", "linux/386", true, false},
        {"linux/arm64", "linux/arm64/v8", true, true},
        {"linux/riscv64", "linux/riscv64", false, true},
        {"linux/s390x", "linux/amd64", false, false},
        {"linux/ppc64le", "linux/ppc64", false, false},
};

static void test_only(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(only_cases); i++) {
        oci_platform r = parse_or_die(only_cases[i].requested);
        oci_platform c = parse_or_die(only_cases[i].candidate);
        oci_matcher m;
        if (only_cases[i].strict) {
            oci_matcher_only_strict(&m, &r);
        } else {
            oci_matcher_only(&m, &r);
        }
        if (oci_matcher_match(&m, &c) != only_cases[i].accepted) {
            print_error("%s(%s) accepting %s: want %d\n",
                        only_cases[i].strict ? "OnlyStrict" : "Only", only_cases[i].requested,
                        only_cases[i].candidate, only_cases[i].accepted);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* An index built from platform strings: "-" is an entry without platform, "att" an attestation. */
static oci_manifest *index_of(const char *const *entries)
{
    mar_buf b = MAR_BUF_INIT(1 << 20);
    T_BUF(mar_buf_puts(&b,
                       "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_INDEX "\",\"manifests\":["));
    for (size_t i = 0; entries[i]; i++) {
        T_BUF(mar_buf_printf(&b,
                             "%s{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"size\":100,\"digest\":"
                             "\"sha256:%064zx\"",
                             i ? "," : "", i + 1));
        if (strcmp(entries[i], "att") == 0) {
            T_BUF(mar_buf_puts(&b,
                               ",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
                               "\"annotations\":{\"vnd.docker.reference.type\":"
                               "\"attestation-manifest\"}"));
        } else if (strcmp(entries[i], "-") != 0) {
            oci_platform p = parse_or_die(entries[i]);
            T_BUF(mar_buf_printf(&b, ",\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"", p.os,
                                 p.arch));
            if (p.variant[0]) {
                T_BUF(mar_buf_printf(&b, ",\"variant\":\"%s\"", p.variant));
            }
            if (p.os_version[0]) {
                T_BUF(mar_buf_printf(&b, ",\"os.version\":\"%s\"", p.os_version));
            }
            if (p.features[0]) {
                /* Plain names only in these cases: no escapes to undo. */
                T_BUF(mar_buf_puts(&b, ",\"os.features\":[\""));
                for (const char *f = p.features; *f; f++) {
                    T_BUF(mar_buf_puts(&b, *f == '+' ? "\",\"" : (char[]){*f, '\0'}));
                }
                T_BUF(mar_buf_puts(&b, "\"]"));
            }
            T_BUF(mar_buf_puts(&b, "}"));
        }
        T_BUF(mar_buf_puts(&b, "}"));
    }
    T_BUF(mar_buf_puts(&b, "]}"));
    oci_manifest *m = NULL;
    mar_err *e = NULL;
    if (oci_manifest_parse(b.data, b.len, OCI_MT_INDEX, &m, &e) < 0) {
        print_error("index: %s\n", e->msg);
        fail();
    }
    mar_buf_release(&b);
    return m;
}

static const struct {
    const char *requested; /* Only(...), or "any:a,b" */
    const char *entries[8];
    const char *order; /* indexes of the result, e.g. "10" */
    size_t attestations;
} order_cases[] = {
        {"linux/amd64", {"linux/386", "linux/amd64"}, "10", 0},
        {"linux/arm64", {"linux/arm/v7", "linux/arm64/v8", "linux/arm/v5"}, "102", 0},
        {"linux/arm/v7", {"linux/arm/v5", "linux/arm/v6", "linux/arm/v7"}, "210", 0},
        {"linux/amd64/v3",
         {"linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/386"},
         "2103",
         0},
        {"linux/amd64", {"-", "linux/386"}, "10", 0},
        {"linux/arm64", {"linux/amd64"}, "", 0},
        {"linux/amd64", {"linux/amd64", "att"}, "0", 1},
        {"linux/amd64", {"linux/amd64", "linux/amd64"}, "01", 0},
        {"linux/arm64/v9", {"linux/arm64/v8.5", "linux/arm64/v9", "linux/arm64"}, "102", 0},
        {"linux/arm/v6", {"linux/arm/v7", "linux/arm/v5", "linux/arm64"}, "1", 0},
        {"any:linux/amd64,linux/arm64", {"linux/s390x", "linux/arm64", "linux/amd64"}, "12", 0},
        {"linux/riscv64", {"att", "linux/riscv64", "att"}, "1", 2},
        /* containerd matches Windows builds on major.minor.build; the higher revision first. */
        {"windows(10.0.17763)/amd64",
         {"windows(10.0.17763.1)/amd64", "windows(10.0.17763.2)/amd64",
          "windows(10.0.20348.1)/amd64", "linux/amd64"},
         "10",
         0},
        {"windows/amd64",
         {"windows(10.0.17763.2+win32k)/amd64", "windows(10.0.20348.1)/amd64"},
         "10",
         0},
        {"windows(10.0.26100)/amd64",
         {"windows(10.0.20348.9)/amd64", "windows(10.0.26100.10)/amd64",
          "windows(10.0.17763.1)/amd64", "windows(10.0.26100.9)/amd64"},
         "130",
         0},
};

static void test_order(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(order_cases); i++) {
        oci_matcher m;
        const char *req = order_cases[i].requested;
        if (mar_str_startswith(req, "any:")) {
            char buf[128];
            mar_strlcpy(buf, req + 4, sizeof(buf));
            char *comma = strchr(buf, ',');
            *comma = '\0';
            oci_platform ps[2] = {parse_or_die(buf), parse_or_die(comma + 1)};
            oci_matcher_any(&m, ps, 2);
        } else {
            oci_platform r = parse_or_die(req);
            oci_matcher_only(&m, &r);
        }
        oci_manifest *idx = index_of(order_cases[i].entries);
        oci_selection sel;
        oci_index_select(idx, &m, &sel);
        char got[16] = "";
        for (size_t k = 0; k < sel.n && k < sizeof(got) - 1; k++) {
            got[k] = (char)('0' + sel.order[k]);
        }
        if (strcmp(got, order_cases[i].order) != 0 ||
            sel.n_attestations != order_cases[i].attestations) {
            print_error("order for %s (case %zu): got '%s' (%zu attestations), want '%s' (%zu)\n",
                        req, i, got, sel.n_attestations, order_cases[i].order,
                        order_cases[i].attestations);
            bad++;
        }
        oci_selection_release(&sel);
        oci_manifest_free(idx);
    }
    assert_int_equal(bad, 0);
}

static const struct {
    const char *cpuinfo, *machine, *want;
} cpu_cases[] = {
        {"processor\t: 0\nCPU architecture: 8\n", "aarch64", "v8"},
        {"CPU architecture: 7\n", "armv7l", "v7"},
        {"model name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n", "armv6l",
         "v6"},
        {"CPU architecture: 5TEJ\n", "armv5tejl", "v5"},
        {"CPU architecture: 7M\n", "armv7l", "v7"},
        {"CPU architecture: 6TEJ\n", "armv6l", "v6"},
        {"", "armv7l", "v7"},
        {"", "aarch64", "v8"},
        {"", "x86_64", ""},
};

static void test_cpu_variant(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(cpu_cases); i++) {
        char got[16];
        oci_cpu_variant(cpu_cases[i].cpuinfo, cpu_cases[i].machine, got, sizeof(got));
        if (strcmp(got, cpu_cases[i].want) != 0) {
            print_error("cpu variant case %zu: got '%s', want '%s'\n", i, got, cpu_cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_host_detect(void **state)
{
    (void)state;
    oci_host h;
    oci_host_detect(&h);
    assert_string_equal(h.platform.os, "linux");
    assert_true(h.platform.arch[0] != '\0');
#if defined(__x86_64__)
    assert_string_equal(h.platform.arch, "amd64");
    assert_true(h.amd64_level >= 1 && h.amd64_level <= 4);
#endif
}

/* containerd platforms v1.0.0-rc.2 windowsVersionMatcher: want is the host, have the image. */
static const struct {
    const char *want, *have;
    bool match;
} winver_cases[] = {
        {"10.0.17763", "10.0.17763.1", true},
        {"10.0.17763", "10.0.17763.2", true},
        {"10.0.17763.5", "10.0.17763.2", true},
        {"10.0.17763", "10.0.20348.1", false},
        {"10.0.20348", "10.0.17763.1", false},
        {"10.0.20348", "10.0.20348.2", true},
        {"10.0.26100", "10.0.20348.1", true},
        {"10.0.26100", "10.0.25398.1", true},
        {"10.0.26100", "10.0.26200.1", false},
        {"10.0.26200", "10.0.20348.1", false},
        {"10.0.26200", "10.0.26100.3", true},
        {"6.3.17763", "10.0.17763", false},
        {"", "10.0.17763.1", true},
        {"10.0.17763", "", true},
        {"latest", "10.0.17763.1", true},
        {"10.0", "10.0.17763.1", true},
        {"10.0.17763", "10.0.17763x", false},
        {"10.0.17763", "garbage", false},
        {"10.0.99999", "10.0.17763.1", true}, /* a build beyond 16 bits reads as empty */
};

static void test_windows_version(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(winver_cases); i++) {
        if (oci_windows_version_matches(winver_cases[i].want, winver_cases[i].have) !=
            winver_cases[i].match) {
            print_error("windows host %s running %s: want %d\n", winver_cases[i].want,
                        winver_cases[i].have, winver_cases[i].match);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_true(oci_windows_version_cmp("10.0.17763.10", "10.0.17763.9") > 0);
    assert_true(oci_windows_version_cmp("10.0.17763", "10.0.17763.0") == 0);
    assert_true(oci_windows_version_cmp("10.0.20348.1", "10.0.17763.99") > 0);
    /* Through the matcher, with the request's version kept in its output. */
    oci_platform w = parse_or_die("windows(10.0.17763)/amd64");
    oci_platform h = parse_or_die("windows(10.0.17763.2)/amd64");
    assert_true(oci_platform_matches(&w, &h));
    char buf[OCI_PLATFORM_ALL_STR_MAX];
    oci_platform_format_all(&w, buf, sizeof(buf));
    assert_string_equal(buf, "windows(10.0.17763)/amd64");
}

/* os.features may hold any string (image-spec config.md sets no grammar): escaped in platform
 * strings, read back the same, one odd entry never failing the others. */
static void test_odd_features(void **state)
{
    (void)state;
    json_t *f = json_pack("[s, s, s, s]", "win32k", "has space", "a/b+c(d)%", "");
    oci_platform p;
    mar_err *e = NULL;
    assert_int_equal(oci_platform_from_fields("linux", "amd64", NULL, "1.0 (beta)", f, &p, &e), 0);
    json_decref(f);
    assert_string_equal(p.features, "win32k+has%20space+a%2Fb%2Bc%28d%29%25");
    char buf[OCI_PLATFORM_ALL_STR_MAX];
    oci_platform_format_all(&p, buf, sizeof(buf));
    assert_string_equal(buf,
                        "linux(1.0%20%28beta%29+win32k+has%20space+a%2Fb%2Bc%28d%29%25)/amd64");
    /* The string parses back to the same platform, and a hand-written spelling (lower-case
     * escapes, a safe byte escaped) to the same canonical form. */
    oci_platform q = parse_or_die(buf);
    assert_string_equal(q.os_version, "1.0 (beta)");
    oci_platform np;
    oci_platform_normalize(&p, &np);
    assert_string_equal(q.features, np.features);
    assert_true(oci_platform_matches(&q, &p));
    oci_platform r = parse_or_die("linux(+has%20space+a%2fb%2Bc%28d%29%25+%77in32k)/amd64");
    assert_string_equal(r.features, np.features);
    char again[OCI_PLATFORM_ALL_STR_MAX];
    oci_platform_format_all(&q, again, sizeof(again));
    oci_platform q2 = parse_or_die(again);
    assert_int_equal(memcmp(&q, &q2, sizeof(q)), 0);
    /* Sorted by the decoded bytes, as containerd sorts OSFeatures. */
    assert_string_equal(np.features, "a%2Fb%2Bc%28d%29%25+has%20space+win32k");
    /* A subset of the features matches; without them it does not. */
    oci_platform want = parse_or_die("linux(+has%20space)/amd64");
    oci_platform have = parse_or_die("linux(+has%20space)/amd64");
    assert_true(oci_platform_matches(&want, &have));
    assert_false(oci_platform_matches(&want, &p));
    oci_platform plain = parse_or_die("linux/amd64");
    assert_false(oci_platform_matches(&plain, &have));
    /* Malformed escapes in a specifier are usage errors. */
    oci_platform host = plat("linux", "amd64", "");
    static const char *const bad[] = {"linux(+a%2)/amd64", "linux(+a%zz)/amd64",
                                      "linux(+a%00)/amd64"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        e = NULL;
        assert_int_equal(oci_platform_parse(bad[i], &host, &q, &e), -MAR_EUSAGE);
        mar_err_free(e);
    }
    /* Non-strings are a malformed document; an overlong list is an entry mar cannot keep. */
    f = json_pack("[s, i]", "a", 1);
    e = NULL;
    assert_int_equal(oci_platform_from_fields("linux", "amd64", NULL, NULL, f, &p, &e),
                     -MAR_EINTEGRITY);
    mar_err_free(e);
    json_decref(f);
    f = json_array();
    for (int i = 0; i < 40; i++) {
        json_array_append_new(f, json_string("feature/slash"));
    }
    e = NULL;
    assert_int_equal(oci_platform_from_fields("linux", "amd64", NULL, NULL, f, &p, &e),
                     -MAR_EUNSUPPORTED);
    assert_string_equal(p.arch, "amd64");
    mar_err_free(e);
    json_decref(f);
}

/* containerd Format: an empty OS is "unknown" alone. */
static void test_format_unknown(void **state)
{
    (void)state;
    oci_platform p = plat("", "arm64", "v8");
    char buf[OCI_PLATFORM_ALL_STR_MAX];
    oci_platform_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");
    mar_strlcpy(p.os_version, "1", sizeof(p.os_version));
    oci_platform_format_all(&p, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");
}

static void test_is_unknown(void **state)
{
    (void)state;
    oci_platform p = plat("unknown", "unknown", "");
    assert_true(oci_platform_is_unknown(&p));
    p = plat("linux", "amd64", "");
    assert_false(oci_platform_is_unknown(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse),        cmocka_unit_test(test_parse_os_options),
            cmocka_unit_test(test_normalize),    cmocka_unit_test(test_match),
            cmocka_unit_test(test_only),         cmocka_unit_test(test_order),
            cmocka_unit_test(test_cpu_variant),  cmocka_unit_test(test_host_detect),
            cmocka_unit_test(test_is_unknown),   cmocka_unit_test(test_windows_version),
            cmocka_unit_test(test_odd_features), cmocka_unit_test(test_format_unknown),
    };
    size_t n = MAR_ARRAY_SIZE(parse_cases) + MAR_ARRAY_SIZE(normalize_cases) +
               MAR_ARRAY_SIZE(match_cases) + MAR_ARRAY_SIZE(only_cases) +
               MAR_ARRAY_SIZE(order_cases) + MAR_ARRAY_SIZE(cpu_cases) +
               MAR_ARRAY_SIZE(winver_cases);
    printf("platform-model %zu table cases\n", n);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* .dockerignore matching (builder/ignore.c). The cases are facts from moby/patternmatcher's tests
 * (patternmatcher_test.go: TestMatches, the filepath.Match table, ignorefile_test.go) and the
 * examples of Docker's build-context documentation; the descent cases follow
 * tonistiigi/fsutil's walker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "builder/builder.h"

static bld_ignore *from(const char *const *patterns)
{
    size_t n = 0;
    while (patterns[n]) {
        n++;
    }
    bld_ignore *m = NULL;
    mar_err *err = NULL;
    if (bld_ignore_from_patterns(patterns, n, &m, &err) < 0) {
        fail_msg("%s", err->msg);
    }
    return m;
}

static bool excluded(const bld_ignore *m, const char *path)
{
    return bld_ignore_match(m, path, false) != BLD_IGNORE_KEEP;
}

/* TestMatches: one pattern, MatchesOrParentMatches. */
static const struct {
    const char *pattern, *text;
    bool pass;
} matches[] = {
        {"**", "file", true},
        {"**", "file/", true},
        {"**/", "file", true},
        {"**/", "file/", true},
        {"**", "/", true},
        {"**/", "/", true},
        {"**", "dir/file", true},
        {"**/", "dir/file", true},
        {"**", "dir/file/", true},
        {"**/", "dir/file/", true},
        {"**/**", "dir/file", true},
        {"**/**", "dir/file/", true},
        {"dir/**", "dir/file", true},
        {"dir/**", "dir/file/", true},
        {"dir/**", "dir/dir2/file", true},
        {"dir/**", "dir/dir2/file/", true},
        {"**/dir", "dir", true},
        {"**/dir", "dir/file", true},
        {"**/dir2/*", "dir/dir2/file", true},
        {"**/dir2/*", "dir/dir2/file/", true},
        {"**/dir2/**", "dir/dir2/dir3/file", true},
        {"**/dir2/**", "dir/dir2/dir3/file/", true},
        {"**file", "file", true},
        {"**file", "dir/file", true},
        {"**/file", "dir/file", true},
        {"**file", "dir/dir/file", true},
        {"**/file", "dir/dir/file", true},
        {"**/file*", "dir/dir/file", true},
        {"**/file*", "dir/dir/file.txt", true},
        {"**/file*txt", "dir/dir/file.txt", true},
        {"**/file*.txt", "dir/dir/file.txt", true},
        {"**/file*.txt*", "dir/dir/file.txt", true},
        {"**/**/*.txt", "dir/dir/file.txt", true},
        {"**/**/*.txt2", "dir/dir/file.txt", false},
        {"**/*.txt", "file.txt", true},
        {"**/**/*.txt", "file.txt", true},
        {"a**/*.txt", "a/file.txt", true},
        {"a**/*.txt", "a/dir/file.txt", true},
        {"a**/*.txt", "a/dir/dir/file.txt", true},
        {"a/*.txt", "a/dir/file.txt", false},
        {"a/*.txt", "a/file.txt", true},
        {"a/*.txt**", "a/file.txt", true},
        {"a[b-d]e", "ae", false},
        {"a[b-d]e", "ace", true},
        {"a[b-d]e", "aae", false},
        {"a[^b-d]e", "aze", true},
        {".*", ".foo", true},
        {".*", "foo", false},
        {"abc.def", "abcdef", false},
        {"abc.def", "abc.def", true},
        {"abc.def", "abcZdef", false},
        {"abc?def", "abcZdef", true},
        {"abc?def", "abcdef", false},
        {"a\\\\", "a\\", true},
        {"**/foo/bar", "foo/bar", true},
        {"**/foo/bar", "dir/foo/bar", true},
        {"**/foo/bar", "dir/dir2/foo/bar", true},
        {"abc/**", "abc", false},
        {"abc/**", "abc/def", true},
        {"abc/**", "abc/def/ghi", true},
        {"**/.foo", ".foo", true},
        {"**/.foo", "bar.foo", false},
        {"a(b)c/def", "a(b)c/def", true},
        {"a(b)c/def", "a(b)c/xyz", false},
        {"a.|)$(}+{bc", "a.|)$(}+{bc", true},
        {"dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
         "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
        {"dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
        {"a\\*b", "a*b", true},
        /* Go's filepath.Match table, as moby runs it */
        {"abc", "abc", true},
        {"*", "abc", true},
        {"*c", "abc", true},
        {"a*", "a", true},
        {"a*", "abc", true},
        {"a*", "ab/c", true},
        {"a*/b", "abc/b", true},
        {"a*/b", "a/c/b", false},
        {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
        {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
        {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
        {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false},
        {"a*b?c*x", "abxbbxdbxebxczzx", true},
        {"a*b?c*x", "abxbbxdbxebxczzy", false},
        {"ab[c]", "abc", true},
        {"ab[b-d]", "abc", true},
        {"ab[e-g]", "abc", false},
        {"ab[^c]", "abc", false},
        {"ab[^b-d]", "abc", false},
        {"ab[^e-g]", "abc", true},
        {"a\\*b", "ab", false},
        {"a?b", "a☺b", true},
        {"a[^a]b", "a☺b", true},
        {"a???b", "a☺b", false},
        {"a[^a][^a][^a]b", "a☺b", false},
        {"[a-ζ]*", "α", true},
        {"*[a-ζ]", "A", false},
        {"a?b", "a/b", false},
        {"a*b", "a/b", false},
        {"[\\]a]", "]", true},
        {"[\\-]", "-", true},
        {"[x\\-]", "x", true},
        {"[x\\-]", "-", true},
        {"[x\\-]", "z", false},
        {"[\\-x]", "x", true},
        {"[\\-x]", "-", true},
        {"[\\-x]", "a", false},
        {"*x", "xxx", true},
        /* Documentation examples (build context, ".dockerignore files") */
        {"*/temp*", "somedir/temporary.txt", true},
        {"*/temp*", "somedir/temp", true},
        {"*/temp*", "temp", false},
        {"*/temp*", "somedir/subdir/temporary.txt", false},
        {"*/*/temp*", "somedir/subdir/temporary.txt", true},
        {"temp?", "tempa", true},
        {"temp?", "tempb/x", true},
        {"temp?", "temp", false},
        {"temp?", "dir/tempa", false},
        {"**/*.go", "main.go", true},
        {"**/*.go", "cmd/app/main.go", true},
        {"foo/bar", "foo/bar/baz", true},
        {"foo/bar", "x/foo/bar", false},
        {"./foo/../bar/", "bar/x", true},
};

static void test_matches(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(matches); i++) {
        const char *p[] = {matches[i].pattern, NULL};
        bld_ignore *m = from(p);
        if (excluded(m, matches[i].text) != matches[i].pass) {
            print_error("pattern '%s', path '%s': want %d\n", matches[i].pattern, matches[i].text,
                        matches[i].pass);
            bad++;
        }
        bld_ignore_free(m);
    }
    assert_int_equal(bad, 0);
}

/* TestMatches multiPatternTests and the single-purpose tests of patternmatcher_test.go. */
static void test_multi(void **state)
{
    (void)state;
    static const struct {
        const char *patterns[4];
        const char *text;
        bool pass;
    } c[] = {
            {{"**", "!util/docker/web"}, "util/docker/web/foo", false},
            {{"**", "!util/docker/web", "util/docker/web/foo"}, "util/docker/web/foo", true},
            {{"**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"},
             "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
             false},
            {{"**", "!dist/*.whl"},
             "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
             false},
            {{"*"}, "fileutils.go", true},
            {{"*.go"}, "fileutils.go", true},
            {{"!fileutils.go", "*.go"}, "fileutils.go", true},
            {{"docs", "!docs/README.md"}, "docs/README.md", false},
            {{"docs/", "!docs/README.md"}, "docs/README.md", false},
            {{"docs/*", "!docs/README.md"}, "docs/README.md", false},
            {{"*.go", "!fileutils.go"}, "fileutils.go", false},
            {{"*.go"}, ".", false},
            {{NULL}, "any/path/there", false},
            {{"docs", "  !docs/README.md  "}, "docs/README.md", false},
            /* the documentation's exceptions: the last matching line wins */
            {{"*.md", "!README*.md", "README-secret.md"}, "README-secret.md", true},
            {{"*.md", "!README*.md", "README-secret.md"}, "README.md", false},
            {{"*.md", "!README*.md", "README-secret.md"}, "CHANGES.md", true},
            {{"*.md", "README-secret.md", "!README*.md"}, "README-secret.md", false},
    };
    int bad = 0;
    for (size_t i = 0; i < MAR_ARRAY_SIZE(c); i++) {
        bld_ignore *m = from(c[i].patterns);
        if (excluded(m, c[i].text) != c[i].pass) {
            print_error("case %zu, path '%s': want %d\n", i, c[i].text, c[i].pass);
            bad++;
        }
        bld_ignore_free(m);
    }
    assert_int_equal(bad, 0);
}

/* Malformed patterns: filepath.Match's errors, and mar's refusals where moby's regular
 * expression would mean something else. */
static void test_bad_patterns(void **state)
{
    (void)state;
    const char *bad[] = {"[]a]", "[-]",   "[x-]", "[-x]", "\\",    "[a-b-c]",
                         "[",    "[^",    "[^bc", "a[",   "!",     "  ! ",
                         "a\\d", "[\\d]", "[*]",  "[a?]", "[z-a]", "[Local-Only]/"};
    for (size_t i = 0; i < MAR_ARRAY_SIZE(bad); i++) {
        bld_ignore *m = NULL;
        mar_err *err = NULL;
        if (bld_ignore_from_patterns(&bad[i], 1, &m, &err) == 0) {
            fail_msg("pattern '%s' accepted", bad[i]);
        }
        assert_int_equal(err->code, MAR_EUSAGE);
        mar_err_free(err);
    }
}

/* ignorefile_test.go TestReadAll: comments in column 1, leading '/' dropped, '!' kept in
 * front after trimming; a lone '!' is an error (patternmatcher.New). */
static void test_file(void **state)
{
    (void)state;
    const char *text = "\xef\xbb\xbftest1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
                       "! /inverted/abs/path\r\n  # not a comment\n";
    bld_ignore *m = NULL;
    mar_err *err = NULL;
    assert_int_equal(bld_ignore_parse(text, strlen(text), ".dockerignore", &m, &err), 0);
    assert_int_equal(bld_ignore_count(m), 6);
    assert_true(excluded(m, "test1"));
    assert_true(excluded(m, "test2/x"));
    assert_true(excluded(m, "a/file/here"));
    assert_false(excluded(m, "file/here"));
    assert_true(excluded(m, "lastfile"));
    assert_true(excluded(m, "# not a comment"));
    assert_false(excluded(m, "inverted/abs/path"));
    bld_ignore_free(m);

    const char *bang = "a\n!\n";
    assert_int_equal(bld_ignore_parse(bang, strlen(bang), "ctx/.dockerignore", &m, &err),
                     -MAR_EUSAGE);
    assert_string_equal(err->msg, "ctx/.dockerignore:2: '!': illegal exclusion pattern '!'");
    mar_err_free(err);
    err = NULL;
    const char *bad = "ok\n\n[\n";
    assert_int_equal(bld_ignore_parse(bad, strlen(bad), ".dockerignore", &m, &err), -MAR_EUSAGE);
    assert_non_null(strstr(err->msg, ".dockerignore:3: '['"));
    mar_err_free(err);

    char *big = mar_xmalloc(BLD_CAP_DOCKERIGNORE + 2);
    memset(big, 'a', BLD_CAP_DOCKERIGNORE + 1);
    err = NULL;
    assert_int_equal(bld_ignore_parse(big, BLD_CAP_DOCKERIGNORE + 1, ".dockerignore", &m, &err),
                     -MAR_EUSAGE);
    assert_non_null(strstr(err->msg, "larger than"));
    mar_err_free(err);
    free(big);
}

/* fsutil's walker: an excluded directory is walked only if a '!' line may re-include
 * something under it. */
static void test_descend(void **state)
{
    (void)state;
    const char *p1[] = {"docs", "!docs/README.md", NULL};
    bld_ignore *m = from(p1);
    assert_int_equal(bld_ignore_match(m, "docs", true), BLD_IGNORE_DESCEND);
    assert_int_equal(bld_ignore_match(m, "docs", false), BLD_IGNORE_EXCLUDE);
    assert_int_equal(bld_ignore_match(m, "docs/README.md", false), BLD_IGNORE_KEEP);
    assert_int_equal(bld_ignore_match(m, "docs/other", true), BLD_IGNORE_EXCLUDE);
    assert_int_equal(bld_ignore_match(m, "src", true), BLD_IGNORE_KEEP);
    bld_ignore_free(m);

    const char *p2[] = {"node_modules", "**/*.log", NULL};
    m = from(p2);
    assert_int_equal(bld_ignore_match(m, "node_modules", true), BLD_IGNORE_EXCLUDE);
    assert_int_equal(bld_ignore_match(m, "a/b/c.log", false), BLD_IGNORE_EXCLUDE);
    assert_int_equal(bld_ignore_match(m, "a/b", true), BLD_IGNORE_KEEP);
    bld_ignore_free(m);

    const char *p3[] = {"*", "!keep/**", NULL};
    m = from(p3);
    assert_int_equal(bld_ignore_match(m, "keep", true), BLD_IGNORE_DESCEND);
    assert_int_equal(bld_ignore_match(m, "keep/a/b", false), BLD_IGNORE_KEEP);
    assert_int_equal(bld_ignore_match(m, "other", true), BLD_IGNORE_EXCLUDE);
    assert_int_equal(bld_ignore_match(m, "other/x", false), BLD_IGNORE_EXCLUDE);
    bld_ignore_free(m);

    const char *p4[] = {"*", "!**/*.go", NULL};
    m = from(p4);
    assert_int_equal(bld_ignore_match(m, "any", true), BLD_IGNORE_DESCEND);
    assert_int_equal(bld_ignore_match(m, "any/x.go", false), BLD_IGNORE_KEEP);
    assert_int_equal(bld_ignore_match(m, "any/x.c", false), BLD_IGNORE_EXCLUDE);
    bld_ignore_free(m);

    /* A path is cleaned first; the context root itself is never excluded. */
    const char *p5[] = {"**", NULL};
    m = from(p5);
    assert_int_equal(bld_ignore_match(m, ".", true), BLD_IGNORE_KEEP);
    assert_int_equal(bld_ignore_match(m, "./a//b/", true), BLD_IGNORE_EXCLUDE);
    bld_ignore_free(m);
}

/* A file name with a newline: Go's "." in the (.*\/)? of "**" does not cross it. */
static void test_newline(void **state)
{
    (void)state;
    const char *p[] = {"**/x*", "a**", NULL};
    bld_ignore *m = from(p);
    assert_false(excluded(m, "d\ne/xy"));
    assert_true(excluded(m, "d/e/xy"));
    assert_true(excluded(m, "ab\nc")); /* "a**" is a prefix test, no expression */
    bld_ignore_free(m);
    const char *q[] = {"**/b/**/c", NULL};
    m = from(q);
    assert_true(excluded(m, "a/b/d/c"));
    assert_false(excluded(m, "a\n/b/d/c"));
    bld_ignore_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_matches),      cmocka_unit_test(test_multi),
            cmocka_unit_test(test_bad_patterns), cmocka_unit_test(test_file),
            cmocka_unit_test(test_descend),      cmocka_unit_test(test_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

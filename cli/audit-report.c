/* The outputs of mar audit, all from one JSON document (docs/internals/style.md §7 "one data
 * path"): a table, the JSON itself, Markdown for a pull-request comment, and a self-contained HTML
 * page (no external assets: the data is embedded, a small script draws the summary chart and the
 * table). */
#include "cli-internal.h"

#include <errno.h>
#include <string.h>

static const char *const verdicts[] = {"native",     "rosetta",        "qemu", "will-fail",
                                       "mislabeled", "no-linux-image", "error"};

static json_t *audit_json(const cmd_audit_run *a)
{
    char tp[OCI_PLATFORM_STR_MAX];
    oci_platform_format(&a->target.platform, tp, sizeof(tp));
    json_t *imgs = json_array();
    json_t *counts = json_object();
    for (size_t v = 0; v < MAR_ARRAY_SIZE(verdicts); v++) {
        json_object_set_new(counts, verdicts[v], json_integer(0));
    }
    for (size_t i = 0; i < a->n_images; i++) {
        const cmd_audit_image *im = &a->images[i];
        json_t *uses = json_array();
        for (size_t u = 0; u < a->in.n; u++) {
            if (a->use_image[u] != im) {
                continue;
            }
            const bld_input_use *use = &a->in.v[u];
            json_array_append_new(uses, json_pack("{s:s, s:I, s:s, s:s}", "file", use->file, "line",
                                                  (json_int_t)use->line, "context", use->context,
                                                  "written", use->image));
        }
        json_t *recs = json_array();
        for (size_t r = 0; r < im->recs.n; r++) {
            json_array_append_new(recs, json_string(im->recs.v[r]));
        }
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "image", im->name, "verdict",
                              im->verdict, "platform", im->platform, "reason", im->reason, "uses",
                              uses, "recommendations", recs);
        if (im->pin) {
            json_object_set_new(o, "pin", json_string(im->pin));
        }
        json_array_append_new(imgs, o);
        json_t *cnt = json_object_get(counts, im->verdict);
        json_object_set_new(counts, im->verdict, json_integer(json_integer_value(cnt) + 1));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:I}", "target", a->target.name, "targetPlatform", tp,
                     "images", imgs, "summary", counts, "requests", (json_int_t)a->requests);
}

static void where(const cmd_audit_run *a, const cmd_audit_image *im, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t u = 0; u < a->in.n; u++) {
        if (a->use_image[u] != im) {
            continue;
        }
        const bld_input_use *use = &a->in.v[u];
        int w = snprintf(buf + used, n - used, "%s%s:%zu (%s)", used ? ", " : "", use->file,
                         use->line, use->context);
        if (w < 0 || (size_t)w >= n - used) {
            break;
        }
        used += (size_t)w;
    }
}

static void summary_text(json_t *doc, char *buf, size_t n)
{
    json_t *counts = json_object_get(doc, "summary");
    size_t used = 0;
    buf[0] = '\0';
    for (size_t v = 0; v < MAR_ARRAY_SIZE(verdicts); v++) {
        json_int_t c = json_integer_value(json_object_get(counts, verdicts[v]));
        if (c) {
            int w = snprintf(buf + used, n - used, "%s%lld %s", used ? ", " : "", (long long)c,
                             verdicts[v]);
            if (w < 0 || (size_t)w >= n - used) {
                break;
            }
            used += (size_t)w;
        }
    }
}

static char *table_label(const cmd_audit_image *im)
{
    return im->pin ? mar_xasprintf("%s (pinned %s)", im->name, im->pin) : mar_xstrdup(im->name);
}

static void print_table(const cmd_audit_run *a, json_t *doc)
{
    printf("Target: %s (%s)\n\n", a->target.name,
           json_string_value(json_object_get(doc, "targetPlatform")));
    /* The image column is as wide as its longest label (capped, so one absurd reference does not
     * push every row off the screen; a longer one just shifts its own row). */
    int iw = 5;
    for (size_t i = 0; i < a->n_images; i++) {
        _cleanup_free_ char *label = table_label(&a->images[i]);
        size_t n = strlen(label);
        iw = n > (size_t)iw ? (n > 80 ? 80 : (int)n) : iw;
    }
    printf("%-*s  %-14s  %-16s  %s\n", iw, "IMAGE", "VERDICT", "RUNS AS", "USED IN");
    for (size_t i = 0; i < a->n_images; i++) {
        const cmd_audit_image *im = &a->images[i];
        char w[2048];
        where(a, im, w, sizeof(w));
        _cleanup_free_ char *label = table_label(im);
        printf("%-*s  %-14s  %-16s  %s\n", iw, cmd_esc(label), im->verdict,
               im->platform[0] ? cmd_esc(im->platform) : "-", cmd_esc(w));
        if (im->reason[0]) {
            printf("%-*s  %s\n", iw, "", cmd_esc(im->reason));
        }
    }
    bool any = false;
    for (size_t i = 0; i < a->n_images; i++) {
        for (size_t r = 0; r < a->images[i].recs.n; r++) {
            if (!any) {
                printf("\nRecommendations:\n");
                any = true;
            }
            printf("  - %s\n", cmd_esc(a->images[i].recs.v[r]));
        }
    }
    char sum[512];
    summary_text(doc, sum, sizeof(sum));
    printf("\n%zu images: %s (%llu registry requests)\n", a->n_images, sum,
           (unsigned long long)a->requests);
}

/* Markdown table cells: pipes and newlines would break the row; control characters are
 * escaped for the terminal first. */
static void md_cell(const char *text)
{
    for (const char *s = cmd_esc(text); *s; s++) {
        if (*s == '|') {
            fputs("\\|", stdout);
        } else if (*s == '\n') {
            fputc(' ', stdout);
        } else {
            fputc(*s, stdout);
        }
    }
}

static void print_markdown(const cmd_audit_run *a, json_t *doc)
{
    printf("## mar audit: %s (%s)\n\n", a->target.name,
           json_string_value(json_object_get(doc, "targetPlatform")));
    printf("| Image | Verdict | Runs as | Used in |\n|---|---|---|---|\n");
    for (size_t i = 0; i < a->n_images; i++) {
        const cmd_audit_image *im = &a->images[i];
        char w[2048];
        where(a, im, w, sizeof(w));
        printf("| `");
        md_cell(im->name);
        printf("`%s%s | **%s**", im->pin ? " pinned " : "", im->pin ? cmd_esc(im->pin) : "",
               im->verdict);
        if (im->reason[0]) {
            printf(": ");
            md_cell(im->reason);
        }
        printf(" | %s | ", im->platform[0] ? cmd_esc(im->platform) : "-");
        md_cell(w);
        printf(" |\n");
    }
    bool any = false;
    for (size_t i = 0; i < a->n_images; i++) {
        for (size_t r = 0; r < a->images[i].recs.n; r++) {
            if (!any) {
                printf("\n### Recommendations\n\n");
                any = true;
            }
            printf("- %s\n", cmd_esc(a->images[i].recs.v[r]));
        }
    }
    char sum[512];
    summary_text(doc, sum, sizeof(sum));
    printf("\n**%zu images:** %s (%llu registry requests)\n", a->n_images, sum,
           (unsigned long long)a->requests);
}

/* The page: static HTML, the data as JSON in a non-executed script element (with "</" escaped
 * so no value can close it), and a script that renders counts, chart and table from it. */
static const char page_head[] =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>mar audit</title>\n<style>\n"
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\n"
        "h1{font-size:1.4em}table{border-collapse:collapse;margin-top:1em}\n"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\n"
        ".native{color:#1a7f37}.rosetta,.qemu{color:#9a6700}.will-fail,.mislabeled,.error,"
        ".no-linux-image{color:#cf222e}\n"
        "#counts span{margin-right:1.5em}\n</style></head><body>\n"
        "<h1>mar audit: <span id=\"target\"></span></h1>\n"
        "<div id=\"counts\"></div>\n<svg id=\"chart\" width=\"560\" height=\"200\" "
        "role=\"img\" aria-label=\"images by verdict\"></svg>\n"
        "<table id=\"images\"><thead><tr><th>Image</th><th>Verdict</th><th>Runs as</th>"
        "<th>Used in</th><th>Recommendations</th></tr></thead><tbody></tbody></table>\n"
        "<p id=\"requests\"></p>\n<script id=\"data\" type=\"application/json\">";

static const char page_tail[] =
        "</script>\n<script>\n"
        "const d = JSON.parse(document.getElementById('data').textContent);\n"
        "document.getElementById('target').textContent = d.target + ' (' + d.targetPlatform + "
        "')';\n"
        "const verdicts = ['native','rosetta','qemu','will-fail','mislabeled','no-linux-image',"
        "'error'];\n"
        "const colors = {'native':'#2da44e','rosetta':'#d4a72c','qemu':'#bf8700',"
        "'will-fail':'#cf222e','mislabeled':'#a40e26','no-linux-image':'#8c959f','error':'#6e7781'}"
        ";\n"
        "const counts = document.getElementById('counts');\n"
        "const chart = document.getElementById('chart');\n"
        "const ns = 'http://www.w3.org/2000/svg';\n"
        "const max = Math.max(1, ...verdicts.map(v => d.summary[v] || 0));\n"
        "verdicts.forEach((v, i) => {\n"
        "  const n = d.summary[v] || 0;\n"
        "  const s = document.createElement('span');\n"
        "  s.className = v;\n"
        "  s.innerHTML = v + ': <b id=\"count-' + v + '\">' + n + '</b>';\n"
        "  counts.appendChild(s);\n"
        "  const h = Math.round(150 * n / max);\n"
        "  const r = document.createElementNS(ns, 'rect');\n"
        "  r.setAttribute('x', 10 + i * 78); r.setAttribute('y', 170 - h);\n"
        "  r.setAttribute('width', 60); r.setAttribute('height', h);\n"
        "  r.setAttribute('fill', colors[v]); r.setAttribute('data-verdict', v);\n"
        "  r.setAttribute('data-count', n);\n"
        "  chart.appendChild(r);\n"
        "  const t = document.createElementNS(ns, 'text');\n"
        "  t.setAttribute('x', 10 + i * 78); t.setAttribute('y', 190);\n"
        "  t.setAttribute('font-size', '10'); t.textContent = v;\n"
        "  chart.appendChild(t);\n"
        "});\n"
        "const tb = document.querySelector('#images tbody');\n"
        "d.images.forEach(im => {\n"
        "  const tr = document.createElement('tr');\n"
        "  const cell = (text, cls) => { const td = document.createElement('td');\n"
        "    td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); };\n"
        "  cell(im.image + (im.pin ? ' (pinned ' + im.pin + ')' : ''));\n"
        "  cell(im.verdict + (im.reason ? ': ' + im.reason : ''), im.verdict);\n"
        "  cell(im.platform || '-');\n"
        "  cell(im.uses.map(u => u.file + ':' + u.line + ' (' + u.context + ')').join(', '));\n"
        "  cell(im.recommendations.join(' / '));\n"
        "  tb.appendChild(tr);\n"
        "});\n"
        "document.getElementById('requests').textContent = d.images.length + ' images, ' + "
        "d.requests + ' registry requests';\n"
        "document.body.setAttribute('data-rendered', 'yes');\n"
        "</script>\n</body></html>\n";

MAR_MUST_USE static int write_html(json_t *doc, const char *path, mar_err **err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        return mar_err_set(err, MAR_EFAIL, 0, "cannot serialize the audit");
    }
    char *tmp;
    FILE *f = cmd_report_open(path, &tmp, err);
    if (!f) {
        free(text);
        return -MAR_EIO;
    }
    fputs(page_head, f);
    for (const char *p = text; *p; p++) {
        if (p[0] == '<' && p[1] == '/') {
            fputs("<\\/", f);
            p++;
        } else {
            fputc(*p, f);
        }
    }
    fputs(page_tail, f);
    free(text);
    return cmd_report_commit(f, path, tmp, err);
}

int cmd_audit_output(const cmd_audit_run *a, const char *format, const char *html, mar_err **err)
{
    json_t *doc = audit_json(a);
    int rc = 0;
    if (html) {
        rc = write_html(doc, html, err);
    }
    if (rc == 0) {
        if (strcmp(format, "json") == 0) {
            cmd_json_print(doc, cmd_stdout_is_tty());
        } else if (strcmp(format, "markdown") == 0) {
            print_markdown(a, doc);
        } else {
            print_table(a, doc);
        }
    }
    json_decref(doc);
    return rc;
}

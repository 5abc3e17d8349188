/* JSON loading and table-driven field dispatch (docs/internals/style.md §5). */
#include "util.h"

#include <string.h>

int mar_json_load(const void *buf, size_t len, const char *what, json_t **ret, mar_err **err)
{
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "invalid JSON in %s at %d:%d: %s", what,
                           jerr.line, jerr.column, jerr.text);
    }
    *ret = j;
    return 0;
}

static const char *type_name(mar_json_type t)
{
    switch (t) {
    case MAR_JSON_STRING:
        return "a string";
    case MAR_JSON_INT:
        return "an integer";
    case MAR_JSON_BOOL:
        return "a boolean";
    case MAR_JSON_OBJECT:
        return "an object";
    case MAR_JSON_ARRAY:
        return "an array";
    case MAR_JSON_STRV:
        return "an array of strings";
    }
    return "?";
}

int mar_json_dispatch(json_t *obj, const mar_json_field *fields, size_t n, void *base,
                      const char *what, mar_err **err)
{
    if (!json_is_object(obj)) {
        return mar_err_set(err, MAR_EINTEGRITY, 0, "%s is not a JSON object", what);
    }
    for (size_t i = 0; i < n; i++) {
        const mar_json_field *f = &fields[i];
        json_t *v = json_object_get(obj, f->name);
        void *slot = (char *)base + f->offset;
        if (!v || json_is_null(v)) {
            if (f->mandatory) {
                return mar_err_set(err, MAR_EINTEGRITY, 0, "%s lacks mandatory field '%s'", what,
                                   f->name);
            }
            continue;
        }
        bool ok = false;
        switch (f->type) {
        case MAR_JSON_STRING:
            if ((ok = json_is_string(v))) {
                char **s = slot;
                free(*s);
                *s = mar_xstrndup(json_string_value(v), json_string_length(v));
            }
            break;
        case MAR_JSON_INT:
            if ((ok = json_is_integer(v))) {
                *(int64_t *)slot = (int64_t)json_integer_value(v);
            }
            break;
        case MAR_JSON_BOOL:
            if ((ok = json_is_boolean(v))) {
                *(bool *)slot = json_is_true(v);
            }
            break;
        case MAR_JSON_OBJECT:
            if ((ok = json_is_object(v))) {
                *(json_t **)slot = v;
            }
            break;
        case MAR_JSON_ARRAY:
            if ((ok = json_is_array(v))) {
                *(json_t **)slot = v;
            }
            break;
        case MAR_JSON_STRV:
            if ((ok = json_is_array(v))) {
                mar_strv *sv = slot;
                size_t k;
                json_t *e;
                json_array_foreach(v, k, e)
                {
                    if (!json_is_string(e)) {
                        ok = false;
                        break;
                    }
                }
                if (ok) {
                    mar_strv_release(sv);
                    json_array_foreach(v, k, e)
                    {
                        mar_strv_push(sv, json_string_value(e));
                    }
                }
            }
            break;
        }
        if (!ok) {
            return mar_err_set(err, MAR_EINTEGRITY, 0, "%s field '%s' is not %s", what, f->name,
                               type_name(f->type));
        }
    }
    return 0;
}

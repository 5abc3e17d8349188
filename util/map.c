/* A string-keyed hash map with open addressing and linear probing (FNV-1a hashing). Used for the
 * file tables of deep scans and the store's reference lists. */
#include "util.h"

#include <string.h>

static char tomb[1]; /* marks a deleted slot */

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static void grow(mar_map *m)
{
    size_t ns = m->slots ? m->slots * 2 : 64;
    char **keys = mar_xcalloc(ns, sizeof(char *));
    void **vals = mar_xcalloc(ns, sizeof(void *));
    for (size_t i = 0; i < m->slots; i++) {
        char *k = m->keys[i];
        if (!k || k == tomb) {
            continue;
        }
        size_t j = hash(k) & (ns - 1);
        while (keys[j]) {
            j = (j + 1) & (ns - 1);
        }
        keys[j] = k;
        vals[j] = m->values[i];
    }
    free(m->keys);
    free(m->values);
    m->keys = keys;
    m->values = vals;
    m->slots = ns;
    m->tombs = 0;
}

static size_t find(const mar_map *m, const char *key, bool *found)
{
    size_t j = hash(key) & (m->slots - 1);
    size_t first_tomb = SIZE_MAX;
    for (;;) {
        char *k = m->keys[j];
        if (!k) {
            *found = false;
            return first_tomb != SIZE_MAX ? first_tomb : j;
        }
        if (k == tomb) {
            if (first_tomb == SIZE_MAX) {
                first_tomb = j;
            }
        } else if (strcmp(k, key) == 0) {
            *found = true;
            return j;
        }
        j = (j + 1) & (m->slots - 1);
    }
}

void *mar_map_set(mar_map *m, const char *key, void *value)
{
    if ((m->n + m->tombs + 1) * 4 >= m->slots * 3) {
        grow(m);
    }
    bool found;
    size_t j = find(m, key, &found);
    if (found) {
        void *old = m->values[j];
        m->values[j] = value;
        return old;
    }
    if (m->keys[j] == tomb) {
        m->tombs--;
    }
    m->keys[j] = mar_xstrdup(key);
    m->values[j] = value;
    m->n++;
    return NULL;
}

void *mar_map_get(const mar_map *m, const char *key)
{
    if (!m->slots) {
        return NULL;
    }
    bool found;
    size_t j = find(m, key, &found);
    return found ? m->values[j] : NULL;
}

void *mar_map_del(mar_map *m, const char *key)
{
    if (!m->slots) {
        return NULL;
    }
    bool found;
    size_t j = find(m, key, &found);
    if (!found) {
        return NULL;
    }
    void *v = m->values[j];
    free(m->keys[j]);
    m->keys[j] = tomb;
    m->values[j] = NULL;
    m->n--;
    m->tombs++;
    return v;
}

bool mar_map_next(const mar_map *m, size_t *pos, const char **ret_key, void **ret_value)
{
    for (; *pos < m->slots; (*pos)++) {
        char *k = m->keys[*pos];
        if (k && k != tomb) {
            *ret_key = k;
            *ret_value = m->values[*pos];
            (*pos)++;
            return true;
        }
    }
    return false;
}

void mar_map_release(mar_map *m)
{
    for (size_t i = 0; i < m->slots; i++) {
        if (m->keys[i] && m->keys[i] != tomb) {
            free(m->keys[i]);
        }
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

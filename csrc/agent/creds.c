/* creds: the agent's files. See creds.h. */
#include "creds.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define JWKS_FILE_MAX (1 << 20)
#define GROUPS_FILE_MAX (8 << 20)

int creds_read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big)
        return -1;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return (int)n;
}

int creds_reload_token(agent_t *a)
{
    char t[sizeof a->token];
    if (creds_read_file(a->cfg.token_file, t, sizeof t) <= 0)
        return -1;
    memcpy(a->token, t, sizeof t);
    return 0;
}

int creds_reload_jwks(agent_t *a)
{
    if (!a->cfg.jwks_file)
        return -1;
    char *buf = malloc(JWKS_FILE_MAX);
    char err[JWT_ERRLEN];
    int n = buf ? creds_read_file(a->cfg.jwks_file, buf, JWKS_FILE_MAX) : -1;
    jwt_keyset ks;
    int rc = n < 0 ? -1 : jwt_keyset_parse(buf, (size_t)n, &ks, err);
    free(buf);
    if (n < 0)
        return -1;
    if (rc < 0) {
        log_kv(LOG_ERROR, "jwks.invalid", "file", a->cfg.jwks_file, "error", err, NULL);
        return -1;
    }
    jwt_keyset_free(&a->keys);
    a->keys = ks;
    return 0;
}

/* The parsed groups file and what it was parsed from. */
static struct {
    cJSON *root;
    struct timespec mtime;
    off_t size;
    int have;
} G;

static const cJSON *groups_root(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        cJSON_Delete(G.root);
        memset(&G, 0, sizeof G);
        return NULL;
    }
    if (G.have && st.st_size == G.size && st.st_mtim.tv_sec == G.mtime.tv_sec &&
        st.st_mtim.tv_nsec == G.mtime.tv_nsec)
        return G.root;
    char *buf = malloc(GROUPS_FILE_MAX);
    int n = buf ? creds_read_file(path, buf, GROUPS_FILE_MAX) : -1;
    cJSON *root = n > 0 ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
    free(buf);
    if (!buf)
        return NULL; /* out of memory: try again next time, keep nothing stale */
    cJSON_Delete(G.root);
    G.root = root;
    G.mtime = st.st_mtim;
    G.size = st.st_size;
    G.have = 1;
    return G.root;
}

int creds_lookup_groups(agent_t *a, const char *oid, char ***out)
{
    *out = NULL;
    if (!a->cfg.groups_file)
        return -1;
    const cJSON *root = groups_root(a->cfg.groups_file);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, oid) : NULL;
    int cnt = -1;
    if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) <= JWT_MAX_GROUPS &&
        (*out = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(char *)))) {
        cnt = 0;
        const cJSON *g;
        cJSON_ArrayForEach (g, arr) {
            if (!cJSON_IsString(g) || strlen(g->valuestring) >= 256)
                continue;
            if (!((*out)[cnt] = strdup(g->valuestring))) {
                /* Fewer groups would impersonate a different user. */
                creds_free_groups(*out, cnt);
                cnt = -1;
                break;
            }
            cnt++;
        }
        if (cnt <= 0) {
            if (cnt == 0)
                free(*out);
            *out = NULL;
        }
    }
    return cnt;
}

void creds_free_groups(char **g, int n)
{
    for (int i = 0; i < n; i++)
        free(g[i]);
    free(g);
}

void creds_close(void)
{
    cJSON_Delete(G.root);
    memset(&G, 0, sizeof G);
}

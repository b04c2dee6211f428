/* hubcfg: relay configuration loading. See hubcfg.h. */
#include "hubcfg.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enc.h"
#include "file.h"
#include "json.h"

#define CFG_MAX_BYTES (4 * 1024 * 1024)
#define NAME_MAX_LEN 260 /* Azure: hybrid connection names up to 260 characters */

static void free_rules(sas_rule *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)r[i].name);
        free((char *)r[i].key);
    }
    free(r);
}

void hubcfg_free(hubcfg *cfg)
{
    free_rules(cfg->ns_rules, cfg->n_ns);
    for (size_t i = 0; i < cfg->n_hcs; i++) {
        free(cfg->hcs[i].name);
        free_rules(cfg->hcs[i].rules, cfg->hcs[i].nrules);
    }
    free(cfg->hcs);
    memset(cfg, 0, sizeof *cfg);
}

static int parse_rules(const cJSON *arr, sas_rule **out, size_t *n, const char *where, char err[256])
{
    *out = NULL;
    *n = 0;
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr)) {
        snprintf(err, 256, "%s: rules must be an array", where);
        return -1;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(arr);
    sas_rule *r = calloc(cnt ? cnt : 1, sizeof *r);
    if (!r) {
        snprintf(err, 256, "%s: out of memory", where);
        return -1;
    }
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach (it, arr) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, "key");
        const cJSON *rights = cJSON_GetObjectItemCaseSensitive(it, "rights");
        if (!cJSON_IsString(name) || !cJSON_IsString(key) || !cJSON_IsArray(rights) || !*name->valuestring ||
            strlen(name->valuestring) > 256 || strlen(key->valuestring) < 16 ||
            strlen(key->valuestring) > 256) {
            snprintf(err, 256, "%s: each rule needs a name, a key of 16-256 characters and rights", where);
            free_rules(r, i);
            return -1;
        }
        int bits = 0;
        const cJSON *rt;
        cJSON_ArrayForEach (rt, rights) {
            if (!cJSON_IsString(rt))
                continue;
            if (strcasecmp(rt->valuestring, "Listen") == 0)
                bits |= SAS_RIGHT_LISTEN;
            else if (strcasecmp(rt->valuestring, "Send") == 0)
                bits |= SAS_RIGHT_SEND;
            else if (strcasecmp(rt->valuestring, "Manage") == 0)
                bits |= SAS_RIGHT_MANAGE;
            else {
                snprintf(err, 256, "%s: unknown right \"%.40s\" (Listen, Send, Manage)", where,
                         rt->valuestring);
                free_rules(r, i);
                return -1;
            }
        }
        r[i].name = strdup(name->valuestring);
        r[i].key = strdup(key->valuestring);
        r[i].rights = bits;
        if (!r[i].name || !r[i].key) {
            snprintf(err, 256, "%s: out of memory", where);
            free_rules(r, i + 1);
            return -1;
        }
        i++;
    }
    *out = r;
    *n = i;
    return 0;
}

int hubcfg_parse(const char *json, size_t n, hubcfg *cfg, char err[256])
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, 256, "config is not a JSON object");
        cJSON_Delete(root);
        return -1;
    }
    if (parse_rules(cJSON_GetObjectItemCaseSensitive(root, "namespaceRules"), &cfg->ns_rules, &cfg->n_ns,
                    "namespaceRules", err) < 0)
        goto fail;
    const cJSON *hcs = cJSON_GetObjectItemCaseSensitive(root, "hybridConnections");
    if (hcs && !cJSON_IsArray(hcs)) {
        snprintf(err, 256, "hybridConnections must be an array");
        goto fail;
    }
    size_t cnt = hcs ? (size_t)cJSON_GetArraySize(hcs) : 0;
    cfg->hcs = calloc(cnt ? cnt : 1, sizeof *cfg->hcs);
    if (!cfg->hcs) {
        snprintf(err, 256, "hybridConnections: out of memory");
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach (it, hcs) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (!cJSON_IsString(name) || !*name->valuestring || strlen(name->valuestring) > NAME_MAX_LEN ||
            name->valuestring[0] == '/' || strstr(name->valuestring, "..") ||
            strchr(name->valuestring, '?')) {
            snprintf(err, 256, "hybridConnections: each needs a name of 1-%d characters without '?' or '..'",
                     NAME_MAX_LEN);
            goto fail;
        }
        hubcfg_hc *h = &cfg->hcs[cfg->n_hcs];
        if (parse_rules(cJSON_GetObjectItemCaseSensitive(it, "rules"), &h->rules, &h->nrules,
                        name->valuestring, err) < 0)
            goto fail;
        cfg->n_hcs++; /* counted first, so that hubcfg_free takes its rules on failure */
        if (!(h->name = strdup(name->valuestring))) {
            snprintf(err, 256, "hybridConnections: out of memory");
            goto fail;
        }
    }
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    hubcfg_free(cfg);
    return -1;
}

int hubcfg_load(const char *path, hubcfg *cfg, char err[256])
{
    size_t n;
    char *buf = file_read(path, CFG_MAX_BYTES, &n, err);
    if (!buf)
        return -1;
    int rc = hubcfg_parse(buf, n, cfg, err);
    free(buf);
    return rc;
}

int hubcfg_write_dev(const char *path, const char *const *hc_names, char err[256])
{
    uint8_t raw[32];
    char key[64];
    if (enc_random(raw, sizeof raw) < 0 || enc_b64_encode(raw, sizeof raw, key, sizeof key) < 0) {
        snprintf(err, 256, "no randomness");
        return -1;
    }
    unsigned mark = json_failures(); /* a file missing its rule would start a keyless relay */
    cJSON *root = cJSON_CreateObject();
    cJSON *ns = cJSON_AddArrayToObject(root, "namespaceRules");
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddStringToObject(rule, "name", "RootManageSharedAccessKey");
    cJSON_AddStringToObject(rule, "key", key);
    const char *rights[] = {"Listen", "Send", "Manage"};
    cJSON_AddItemToObject(rule, "rights", cJSON_CreateStringArray(rights, 3));
    if (!cJSON_AddItemToArray(ns, rule))
        cJSON_Delete(rule);
    cJSON *hcs = cJSON_AddArrayToObject(root, "hybridConnections");
    for (; hc_names && *hc_names; hc_names++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", *hc_names);
        if (!cJSON_AddItemToArray(hcs, h))
            cJSON_Delete(h);
    }
    char *text = json_print(root, mark, 1);
    cJSON_Delete(root);
    /* Never over an existing config: its keys are in use. */
    int rc = text ? file_write_atomic(path, text, strlen(text), 0600, FILE_NO_REPLACE, err) : -1;
    if (!text)
        snprintf(err, 256, "out of memory writing %s", path);
    free(text);
    return rc;
}

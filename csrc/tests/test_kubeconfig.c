/* Unit tests for kubeconfig: merging into nothing, into a file with other
 * entries and unknown fields, replacing an entry of the same name, quoting,
 * and every refusal (the input is never changed on refusal). */
#include <sys/stat.h>

#include "check.h"
#include "kubeconfig.h"

static int tests_run;

static const kcfg_entry E = {.cluster = "c1",
                             .server = "https://127.0.0.1:47011",
                             .ca_data = "Q0E=",
                             .user = "clusterUser_rg_c1",
                             .client_cert_data = "Q0VSVA==",
                             .client_key_data = "S0VZ",
                             .context = "c1"};

static char *merge(const char *in, char err[KCFG_ERRLEN])
{
    char *out = NULL;
    size_t n = 0;
    if (kcfg_merge(in, strlen(in), &E, &out, &n, err) < 0)
        return NULL;
    CHECK_EQ(strlen(out), n);
    return out;
}

static void into_nothing(void)
{
    char err[KCFG_ERRLEN];
    char *o = merge("", err);
    CHECK(o);
    CHECK(strstr(o, "apiVersion: v1") && strstr(o, "kind: Config"));
    CHECK(strstr(o, "server: https://127.0.0.1:47011"));
    CHECK(strstr(o, "current-context: c1"));
    CHECK(strstr(o, "client-key-data: S0VZ"));
    /* Merging the output again changes nothing. */
    char *o2 = merge(o, err);
    CHECK_STR(o2, o);
    free(o);
    free(o2);
    o = merge("# just a comment\n", err);
    CHECK(o && strstr(o, "current-context: c1"));
    free(o);
}

static void keeps_others(void)
{
    char err[KCFG_ERRLEN];
    const char *in =
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: prod\n  cluster: {server: 'https://prod:6443', insecure-skip-tls-verify: true}\n"
        "- name: c1\n  cluster: {server: https://old}\n  extensions: [{name: keep-me, extension: {a: 1}}]\n"
        "users:\n- name: admin\n  user: {token: abc}\n"
        "contexts:\n- name: prod\n  context: {cluster: prod, user: admin, namespace: ops}\n"
        "current-context: prod\npreferences: {colors: true}\nx-unknown-field:\n  nested: [1, 2, 3]\n";
    char *o = merge(in, err);
    CHECK(o);
    CHECK(strstr(o, "https://prod:6443"));
    CHECK(strstr(o, "insecure-skip-tls-verify: true"));
    CHECK(strstr(o, "token: abc"));
    CHECK(strstr(o, "namespace: ops"));
    CHECK(strstr(o, "x-unknown-field"));
    CHECK(strstr(o, "colors: true"));
    CHECK(strstr(o, "keep-me"));             /* extensions of the replaced entry survive */
    CHECK(strstr(o, "https://old") == NULL); /* the replaced entry's server is gone */
    CHECK(strstr(o, "current-context: c1"));
    /* Exactly one c1 cluster. */
    const char *first = strstr(o, "name: c1");
    CHECK(first);
    free(o);
}

static void quoting(void)
{
    char err[KCFG_ERRLEN], *out = NULL;
    size_t n;
    kcfg_entry e = E;
    e.cluster = e.context = "true";
    e.user = "0123";
    CHECK_EQ(kcfg_merge("", 0, &e, &out, &n, err), 0);
    CHECK(strstr(out, "current-context: \"true\""));
    CHECK(strstr(out, "name: \"0123\""));
    free(out);
}

static void refusals(void)
{
    char err[KCFG_ERRLEN];
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"- a\n- b\n",               "not a YAML mapping"         },
        {"clusters: yes-a-scalar\n", "\"clusters\" is not a list" },
        {"users: {a: 1}\n",          "\"users\" is not a list"    },
        {"contexts: [1]\n",          "is not a mapping"           },
        {"a: 1\n---\nb: 2\n",        "more than one YAML document"},
        {"a: [unclosed\n",           "not valid YAML"             },
        {"a: b: c\n",                "not valid YAML"             },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(merge(bad[i].in, err) == NULL);
        if (!strstr(err, bad[i].why)) {
            fprintf(stderr, "input %zu: %s\n", i, err);
            CHECK(0);
        }
    }
    char deep[400];
    memset(deep, '[', 200);
    deep[200] = '\0';
    CHECK(merge(deep, err) == NULL);
    CHECK(strstr(err, "nests deeper") != NULL);
    char nul[] = "a: 1\0b: 2";
    char *out;
    size_t n;
    CHECK_EQ(kcfg_merge(nul, sizeof nul - 1, &E, &out, &n, err), -1);
}

static void files(void)
{
    char dir[128], path[256], err[KCFG_ERRLEN];
    snprintf(dir, sizeof dir, "/tmp/ck-kcfg-%d", (int)getpid());
    snprintf(path, sizeof path, "%s/sub/dir/config", dir);
    CHECK_EQ(kcfg_merge_file(path, &E, err), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* A malformed file is refused and left byte for byte. */
    FILE *f = fopen(path, "w");
    fputs("clusters: 42\n", f);
    fclose(f);
    chmod(path, 0644);
    CHECK_EQ(kcfg_merge_file(path, &E, err), -1);
    CHECK(strstr(err, "left unchanged") != NULL);
    char buf[64] = {0};
    f = fopen(path, "r");
    CHECK(fread(buf, 1, sizeof buf - 1, f) == 13);
    fclose(f);
    CHECK_STR(buf, "clusters: 42\n");
    CHECK_EQ(kcfg_merge_file(dir, &E, err), -1); /* a directory is not a kubeconfig */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

int main(void)
{
    TEST(into_nothing);
    TEST(keeps_others);
    TEST(quoting);
    TEST(refusals);
    TEST(files);
    TEST_MAIN_END();
}

/* clusterconnect-agent: dials out to a Hybrid Connections relay as a
 * listener and serves each accepted stream as the verified caller against
 * the Kubernetes API server. Flags, start-up and the health endpoint live
 * here; agent.h lists the modules that do the work. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "authz.h"
#include "channel.h"
#include "conn.h"
#include "creds.h"
#include "fwd.h"
#include "http.h"
#include "httpc.h"
#include "jwks.h"
#include "json.h"
#include "log.h"
#include "pxy.h"
#include "reg.h"
#include "sign.h"
#include "url.h"

#define AGENT_VERSION "0.1.0"

static const char usage[] =
    "Usage: clusterconnect-agent [options]\n"
    "\n"
    "Listens on a Hybrid Connections relay (outbound only) and forwards each caller's\n"
    "requests to the Kubernetes API server, impersonating callers with verified OIDC tokens.\n"
    "\n"
    "Registered mode (what az connectedk8s connect installs):\n"
    "  --hub URL                https://HOST[:PORT] of arc-hub; the agent reports there, and\n"
    "                           gets its relay, hybrid connection, Listen tokens and features\n"
    "  --resource-id ID         the connectedCluster's ARM id\n"
    "  --identity-key FILE      the agent's private key (PEM) whose public half the resource holds\n"
    "Relay (without --hub):\n"
    "  --relay URL              wss://HOST[:PORT] of arc-hub or an Azure Relay namespace\n"
    "  --hybrid-connection NAME the cluster's hybrid connection\n"
    "  --key-name NAME          SAS rule with the Listen right\n"
    "  --key-file FILE          file holding that rule's key (or env CK_RELAY_KEY)\n"
    "  --relay-ca FILE          CA bundle for the relay and the hub (default: system store)\n"
    "  --channels N             control channels to keep open (default 2)\n"
    "  --token-ttl SECONDS      listen token lifetime, renewed before expiry (default 3600)\n"
    "  --ping-interval SECONDS  ping idle channels; 3 silent intervals = dead (default 30)\n"
    "Outbound proxy (the relay, the hub, --jwks-url; never the API server):\n"
    "  --proxy-https URL        http://[USER:PASSWORD@]HOST:PORT for https/wss destinations\n"
    "                           (default $https_proxy or $HTTPS_PROXY, else $ALL_PROXY)\n"
    "  --proxy-http URL         the same for http/ws destinations (default $http_proxy, $HTTP_PROXY)\n"
    "  --proxy-skip-range LIST  hosts, domains and CIDRs dialled directly, comma separated\n"
    "                           (added to $NO_PROXY; the API server is always direct)\n"
    "  --proxy-cert FILE        CA bundle for an https:// proxy's own certificate (HTTP calls;\n"
    "                           the relay's WebSockets need an http:// proxy: CONNECT tunnels\n"
    "                           with TLS end to end inside)\n"
    "API server:\n"
    "  --apiserver URL          default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\n"
    "  --apiserver-ca FILE      default /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
    "  --token-file FILE        the agent's own token (re-read every 30 s for rotation),\n"
    "                           default /var/run/secrets/kubernetes.io/serviceaccount/token\n"
    "Callers:\n"
    "  --issuer URL --audience AUD (--jwks-url URL | --jwks-file FILE)\n"
    "                           trusted OIDC issuer whose tokens are verified and impersonated;\n"
    "                           other bearer tokens pass through to the API server untouched.\n"
    "                           Keys from a URL are fetched hourly and when a token names an\n"
    "                           unknown key (such requests wait for the fetch)\n"
    "  --jwks-ca FILE           CA bundle for --jwks-url (default: system store)\n"
    "  --groups-file FILE       groups for tokens with a groups overage claim (JSON: {\"<oid>\": "
    "[\"<group>\", ...]});\n"
    "                           re-read on each such token\n"
    "  --username-claim upn|oid whom the API server sees for a user: upn (default) is the upn\n"
    "                           claim when the token has one, else the object id; oid is always\n"
    "                           the object id. Applications and guests are their object id\n"
    "  --username-prefix STR    put in front of every impersonated user name (default none)\n"
    "  --groups-prefix STR      put in front of every impersonated group (default none)\n"
    "  --authz-cache-ttl SEC    reuse an azure-rbac allow/deny this long (default 10; 0: off);\n"
    "                           a change of role assignments at the hub drops it at once\n"
    "Other:\n"
    "  --NAME=VALUE             the same as --NAME VALUE\n"
    "  --config FILE            JSON object of these options without the dashes, e.g.\n"
    "                           {\"hub\": \"https://hub\", \"resource-id\": \"/subscriptions/...\"};\n"
    "                           flags on the command line win\n"
    "  --health-listen ADDR:PORT  /healthz, /readyz (a channel is up), /metrics (default 127.0.0.1:8081)\n"
    "  --log-level LEVEL        debug, info, warn, error\n"
    "  --version, --help\n";

static agent_t A;
static uv_timer_t tick;
static uv_signal_t sig_int, sig_term;
static uv_tcp_t health;

static void on_tick(uv_timer_t *t)
{
    static unsigned n;
    (void)t;
    if (A.channels_started)
        channel_tick(&A);
    reg_tick(&A);
    jwks_tick(&A);
    if (++n % 30 == 0 && creds_reload_token(&A) < 0)
        log_kv(LOG_WARN, "token.reload_failed", "file", A.cfg.token_file, NULL);
}

static size_t health_data(conn_t *c, uint8_t *d, size_t n)
{
    http_request req;
    int rc = http_parse_request((const char *)d, n, 0, NULL, &req);
    if (rc == HTTP_INCOMPLETE)
        return 0;
    char body[1024];
    int status = 200;
    if (rc < 0) {
        status = 400;
        snprintf(body, sizeof body, "bad request\n");
    } else if (http_eq(req.target, req.target_len, "/healthz")) {
        snprintf(body, sizeof body, "ok\n");
    } else if (http_eq(req.target, req.target_len, "/readyz")) {
        status = A.channels_up > 0 ? 200 : 503;
        snprintf(body, sizeof body, "%s\n", A.channels_up > 0 ? "ok" : "no relay channel is up");
    } else if (http_eq(req.target, req.target_len, "/metrics")) {
        httpc_stats hs;
        uint64_t hits, misses;
        httpc_get_stats(A.http, &hs);
        authz_counts(&A, &hits, &misses);
        /* Counts only: no proxy URL (it may hold credentials) appears. */
        snprintf(body, sizeof body,
                 "# TYPE agent_channels_up gauge\nagent_channels_up %d\n"
                 "# TYPE agent_streams_total counter\nagent_streams_total %llu\n"
                 "# TYPE agent_requests_total counter\nagent_requests_total %llu\n"
                 "# TYPE agent_http_requests_total counter\nagent_http_requests_total %llu\n"
                 "# TYPE agent_http_connects_total counter\nagent_http_connects_total %llu\n"
                 "# TYPE agent_http_failures_total counter\nagent_http_failures_total %llu\n"
                 "# TYPE agent_tunnels_total counter\nagent_tunnels_total %llu\n"
                 "# TYPE agent_authz_cache_hits_total counter\nagent_authz_cache_hits_total %llu\n"
                 "# TYPE agent_authz_checks_total counter\nagent_authz_checks_total %llu\n"
                 "# TYPE agent_jwt_signed_total counter\nagent_jwt_signed_total %llu\n",
                 A.channels_up, (unsigned long long)A.streams, (unsigned long long)A.requests, hs.requests,
                 hs.connects, hs.failures, hs.tunnels, (unsigned long long)hits, (unsigned long long)misses,
                 (unsigned long long)sign_count(A.sign));
    } else {
        status = 404;
        snprintf(body, sizeof body, "not found\n");
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, http_reason(status), strlen(body));
    /* The connection closes either way; a failed write only means that the
     * prober sees it close without an answer. */
    (void)conn_write2(c, head, (size_t)hl, body, strlen(body));
    conn_close(c, 1);
    return n;
}

static const conn_cbs health_cbs = {.on_data = health_data};

static void on_health(uv_stream_t *s, int status)
{
    if (status == 0)
        conn_accept(s, NULL, &health_cbs, NULL, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    log_kv(LOG_INFO, "agent.stop", "signal", signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    reg_stop(&A);
    authz_stop(&A);
    jwks_stop();
    channel_stop_all(&A);
    /* Last: whatever still waits on it (a stream's tunnel) hears "shutting
     * down" and closes. */
    httpc_free(A.http);
    A.http = NULL; /* later calls (a stream still finishing) fail cleanly */
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&health, NULL);
}

#define CONFIG_MAX (1 << 20)

/* --config FILE: its keys become flags placed before the command line's,
 * so the command line wins (later flags overwrite earlier ones). */
static int config_argv(int *argc, char ***argv)
{
    const char *path = NULL;
    for (int i = 1; i + 1 < *argc; i++)
        if (!strcmp((*argv)[i], "--config"))
            path = (*argv)[i + 1];
    if (!path)
        return 0;
    static char text[CONFIG_MAX];
    if (creds_read_file(path, text, sizeof text) <= 0) {
        fprintf(stderr, "clusterconnect-agent: cannot read --config %s (missing, empty or over 1 MiB)\n",
                path);
        return -1;
    }
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        fprintf(stderr, "clusterconnect-agent: --config %s is not a JSON object\n", path);
        cJSON_Delete(o);
        return -1;
    }
    int n = cJSON_GetArraySize(o);
    char **av = calloc((size_t)(*argc + 2 * n + 1), sizeof *av);
    if (!av) {
        fprintf(stderr, "clusterconnect-agent: out of memory reading --config %s\n", path);
        cJSON_Delete(o);
        return -1;
    }
    int k = 0;
    av[k++] = (*argv)[0];
    const cJSON *it;
    cJSON_ArrayForEach (it, o) {
        char flag[128], val[64];
        if (strlen(it->string) > 100 || strchr(it->string, ' ')) {
            fprintf(stderr, "clusterconnect-agent: --config %s: bad key \"%.100s\"\n", path, it->string);
            cJSON_Delete(o);
            return -1;
        }
        snprintf(flag, sizeof flag, "--%s", it->string);
        const char *v = NULL;
        if (cJSON_IsString(it))
            v = it->valuestring;
        else if (cJSON_IsNumber(it))
            v = (snprintf(val, sizeof val, "%g", it->valuedouble), val);
        if (!v) {
            fprintf(stderr, "clusterconnect-agent: --config %s: \"%s\" must be a string or a number\n", path,
                    it->string);
            cJSON_Delete(o);
            return -1;
        }
        if (!(av[k++] = strdup(flag)) || !(av[k++] = strdup(v))) {
            fprintf(stderr, "clusterconnect-agent: out of memory reading --config %s\n", path);
            cJSON_Delete(o);
            return -1; /* the process exits; av is not worth freeing */
        }
    }
    cJSON_Delete(o);
    for (int i = 1; i < *argc; i++)
        av[k++] = (*argv)[i];
    *argc = k;
    *argv = av; /* lives as long as the process, like argv */
    return 0;
}

/* --name=value becomes --name value, as the Deployments write flags
 * (deploy/agent, az connectedk8s connect); an empty value stays a value. */
static int split_eq_argv(int *argc, char ***argv)
{
    char **av = calloc((size_t)(2 * *argc + 1), sizeof *av);
    if (!av) {
        fprintf(stderr, "clusterconnect-agent: out of memory reading the command line\n");
        return -1;
    }
    int k = 0;
    for (int i = 0; i < *argc; i++) {
        char *a = (*argv)[i], *eq = i > 0 && !strncmp(a, "--", 2) ? strchr(a, '=') : NULL;
        if (!eq) {
            av[k++] = a;
            continue;
        }
        if (!(av[k++] = strndup(a, (size_t)(eq - a)))) {
            fprintf(stderr, "clusterconnect-agent: out of memory reading the command line\n");
            return -1; /* the process exits; av is not worth freeing */
        }
        av[k++] = eq + 1;
    }
    *argc = k;
    *argv = av; /* lives as long as the process, like argv */
    return 0;
}

static int need(int i, int argc, const char *a)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "clusterconnect-agent: %s needs a value (see --help)\n", a);
        exit(2);
    }
    return i + 1;
}

int main(int argc, char **argv)
{
    agent_cfg *c = &A.cfg;
    c->channels = 2;
    c->token_ttl = 3600;
    c->ping_ms = 30000;
    c->token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
    c->authz_ttl_s = AUTHZ_DEFAULT_TTL_S;
    const char *px_https = NULL, *px_http = NULL, *px_skip = NULL, *px_cert = NULL;
    json_init(NULL); /* before any cJSON use: trees that lost a member are refused */
    if (split_eq_argv(&argc, &argv) < 0 || config_argv(&argc, &argv) < 0)
        return 2;
    const char *api_ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", *relay_ca = NULL,
               *key_file = NULL;
    char api_default[300] = "";
    char hh[128] = "127.0.0.1", lerr[128]; /* the health listener's address */
    int hp = 8081;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            puts("clusterconnect-agent " AGENT_VERSION);
            return 0;
        } else if (!strcmp(a, "--hub")) {
            c->hub = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--resource-id")) {
            c->resource_id = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--identity-key")) {
            c->identity_key = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--relay")) {
            c->relay = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--hybrid-connection")) {
            c->hc = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--key-name")) {
            c->key_name = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--key-file")) {
            key_file = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--relay-ca")) {
            relay_ca = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--channels")) {
            c->channels = atoi(argv[i = need(i, argc, a)]);
        } else if (!strcmp(a, "--token-ttl")) {
            c->token_ttl = (unsigned)atoi(argv[i = need(i, argc, a)]);
        } else if (!strcmp(a, "--ping-interval")) {
            c->ping_ms = (unsigned)(atof(argv[i = need(i, argc, a)]) * 1000);
        } else if (!strcmp(a, "--apiserver")) {
            c->apiserver = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--apiserver-ca")) {
            api_ca = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--token-file")) {
            c->token_file = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--issuer")) {
            c->issuer = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--audience")) {
            c->audience = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--jwks-file")) {
            c->jwks_file = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--jwks-url")) {
            c->jwks_url = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--jwks-ca")) {
            c->jwks_ca = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--proxy-https")) {
            px_https = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--proxy-http")) {
            px_http = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--proxy-skip-range")) {
            px_skip = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--proxy-cert")) {
            px_cert = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--authz-cache-ttl")) {
            const char *v = argv[i = need(i, argc, a)];
            char *end;
            long t = strtol(v, &end, 10);
            if (*v < '0' || *v > '9' || *end || t > 3600) {
                fprintf(stderr, "clusterconnect-agent: --authz-cache-ttl wants 0..3600 seconds\n");
                return 2;
            }
            c->authz_ttl_s = (unsigned)t;
        } else if (!strcmp(a, "--config")) {
            i = need(i, argc, a); /* read before the other flags (config_argv) */
        } else if (!strcmp(a, "--groups-file")) {
            c->groups_file = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--username-claim")) {
            const char *v = argv[i = need(i, argc, a)];
            if ((c->ident.claim = ident_parse_claim(v)) < 0) {
                fprintf(stderr, "clusterconnect-agent: --username-claim is upn or oid, not \"%s\"\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--username-prefix")) {
            c->ident.user_prefix = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--groups-prefix")) {
            c->ident.group_prefix = argv[i = need(i, argc, a)];
        } else if (!strcmp(a, "--health-listen")) {
            const char *v = argv[i = need(i, argc, a)];
            char aerr[128];
            if (conn_parse_addr(v, hh, sizeof hh, &hp, aerr) < 0) {
                fprintf(stderr, "clusterconnect-agent: --health-listen: %s\n", aerr);
                return 2;
            }
        } else if (!strcmp(a, "--log-level")) {
            const char *v = argv[i = need(i, argc, a)];
            log_set_level(!strcmp(v, "debug")   ? LOG_DEBUG
                          : !strcmp(v, "warn")  ? LOG_WARN
                          : !strcmp(v, "error") ? LOG_ERROR
                                                : LOG_INFO);
        } else {
            fprintf(stderr, "clusterconnect-agent: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (!c->apiserver && getenv("KUBERNETES_SERVICE_HOST")) {
        snprintf(api_default, sizeof api_default, "https://%s:%s", getenv("KUBERNETES_SERVICE_HOST"),
                 getenv("KUBERNETES_SERVICE_PORT") ? getenv("KUBERNETES_SERVICE_PORT") : "443");
        c->apiserver = api_default;
    }
    static char key[512];
    if (key_file) {
        if (creds_read_file(key_file, key, sizeof key) <= 0) {
            fprintf(stderr, "clusterconnect-agent: cannot read --key-file %s\n", key_file);
            return 1;
        }
        c->key = key;
    } else {
        c->key = getenv("CK_RELAY_KEY");
    }
    if (c->hub && (!c->resource_id || !c->identity_key || !c->apiserver)) {
        fprintf(stderr, "clusterconnect-agent: --hub needs --resource-id, --identity-key and --apiserver\n");
        return 2;
    }
    if (!c->hub && (!c->relay || !c->hc || !c->key_name || !c->key || !c->apiserver)) {
        fprintf(stderr, "clusterconnect-agent: give --hub with --resource-id and --identity-key, or --relay, "
                        "--hybrid-connection, --key-name and --key-file (or CK_RELAY_KEY); and --apiserver "
                        "(see --help)\n");
        return 2;
    }
    if (c->channels < 1 || c->channels > 25 || c->token_ttl < 10 || c->ping_ms < 100) {
        fprintf(stderr,
                "clusterconnect-agent: --channels 1..25, --token-ttl >= 10, --ping-interval >= 0.1\n");
        return 2;
    }
    if (c->issuer && (!c->audience || (!c->jwks_file && !c->jwks_url))) {
        fprintf(stderr, "clusterconnect-agent: --issuer needs --audience and --jwks-url or --jwks-file\n");
        return 2;
    }
    url_parts u;
    if (url_parse(c->apiserver, strlen(c->apiserver), &u) < 0 || u.host.n >= sizeof A.api_host) {
        fprintf(stderr, "clusterconnect-agent: --apiserver wants https://HOST:PORT\n");
        return 2;
    }
    memcpy(A.api_host, u.host.p, u.host.n);
    A.api_port = u.port;
    /* The environment first, then the flags (which win). The API server is
     * never dialled through the proxy (fwd.c and reg.c's /version go
     * direct), without a skip entry: a skip entry names a host, and the
     * hub may share the API server's host on another port. */
    char perr[PXY_ERRLEN];
    pxy_from_env(&A.proxy);
    if ((px_https && pxy_set_https(&A.proxy, px_https, perr) < 0) ||
        (px_http && pxy_set_http(&A.proxy, px_http, perr) < 0) ||
        (px_skip && pxy_add_skip(&A.proxy, px_skip, perr) < 0)) {
        fprintf(stderr, "clusterconnect-agent: %s\n", perr);
        return 2;
    }
    if (px_cert)
        snprintf(A.proxy.ca_file, sizeof A.proxy.ca_file, "%s", px_cert);
    c->api_ca = api_ca;
    c->relay_ca = relay_ca;
    if (creds_reload_token(&A) < 0) {
        fprintf(stderr, "clusterconnect-agent: cannot read the agent's token from %s\n", c->token_file);
        return 1;
    }
    if (c->issuer && c->jwks_file && !c->jwks_url && creds_reload_jwks(&A) < 0) {
        fprintf(stderr, "clusterconnect-agent: cannot load keys from --jwks-file %s\n", c->jwks_file);
        return 1;
    }
    char err[TLS_ERRLEN];
    if (!(A.relay_tls = tls_client_ctx(relay_ca, NULL, NULL, err)) ||
        !(A.api_tls = tls_client_ctx(api_ca, NULL, NULL, err))) {
        fprintf(stderr, "clusterconnect-agent: %s\n", err);
        return 1;
    }
    tls_ctx_set_alpn(A.api_tls, "http/1.1"); /* kubectl's HTTP/1.1 stream goes through unchanged */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    A.loop = uv_default_loop();
    if (conn_listen(A.loop, &health, hh, hp, on_health, lerr) != 0) {
        fprintf(stderr, "clusterconnect-agent: --health-listen: %s\n", lerr);
        uv_close((uv_handle_t *)&health, NULL); /* conn_listen's contract */
        return 1;
    }
    if (!(A.http = httpc_new(A.loop, &A.proxy))) {
        fprintf(stderr, "clusterconnect-agent: cannot initialise libcurl\n");
        return 1;
    }
    A.on_accept = fwd_accept;
    char shown_s[PXY_URL_MAX] = "direct", shown_h[PXY_URL_MAX] = "direct";
    if (A.proxy.https[0])
        pxy_display(A.proxy.https, shown_s, sizeof shown_s);
    if (A.proxy.http[0])
        pxy_display(A.proxy.http, shown_h, sizeof shown_h);
    if (A.proxy.https[0] || A.proxy.http[0])
        log_kv(LOG_INFO, "agent.proxy", "https", shown_s, "http", shown_h, "skip", A.proxy.skip, NULL);
    if (c->hub) {
        char serr[256];
        if (!(A.sign = sign_open(c->identity_key, c->resource_id, c->hub, serr))) {
            fprintf(stderr, "clusterconnect-agent: %s\n", serr);
            return 1;
        }
    }
    if (c->issuer && c->jwks_url)
        jwks_start(&A);
    if (c->hub) {
        char rerr[256];
        if (reg_start(&A, rerr) < 0) {
            fprintf(stderr, "clusterconnect-agent: %s\n", rerr);
            return 1;
        }
    } else if (channel_start_all(&A) < 0) {
        fprintf(stderr, "clusterconnect-agent: out of memory\n");
        return 1;
    }
    uv_timer_init(A.loop, &tick);
    uv_timer_start(&tick, on_tick, 1000, 1000);
    uv_signal_init(A.loop, &sig_int);
    uv_signal_init(A.loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    if (c->hub)
        printf("clusterconnect-agent: registered mode, reporting to %s as %s; health on http://%s:%d\n",
               c->hub, c->resource_id, hh, conn_bound_port(&health));
    else
        printf("clusterconnect-agent: listening on %s/$hc/%s with %d channels; health on http://%s:%d\n",
               c->relay, c->hc, c->channels, hh, conn_bound_port(&health));
    uv_run(A.loop, UV_RUN_DEFAULT);
    jwt_keyset_free(&A.keys);
    creds_close();
    sign_close(A.sign);
    free(A.authz);
    tls_ctx_free(A.relay_tls);
    tls_ctx_free(A.api_tls);
    return 0;
}

/* arc-hub: the self-hosted Azure Arc stand-in. This file parses the
 * command line, prepares TLS (or development certificates) and runs the
 * loop; the relay lives in relay.c, the front door in hub.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentapi.h"
#include "arm.h"
#include "graph.h"
#include "cert.h"
#include "file.h"
#include "hub.h"
#include "hubcfg.h"
#include "idp.h"
#include "json.h"
#include "log.h"
#include "relay.h"
#include "store.h"
#include "tenants.h"
#include "verify.h"

#define ARC_HUB_VERSION "0.1.0"

static const char usage[] =
    "Usage: arc-hub [options]\n"
    "\n"
    "Runs the connectedk8s hub on one TLS port: an Azure Relay Hybrid Connections\n"
    "compatible relay (wss://HOST/$hc/NAME), an ARM-shaped control plane for\n"
    "Microsoft.Kubernetes/connectedClusters and role assignments (/subscriptions/...),\n"
    "a test/demo OIDC issuer (/adfs/..., /msi/token) where people sign in too (password,\n"
    "device code at /adfs/devicelogin, refresh tokens), a slice of Microsoft Graph (/graph/v1.0/...),\n"
    "/healthz and /metrics.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT        address to listen on (default 127.0.0.1:8443; port 0 picks one)\n"
    "  --cert FILE --key FILE    TLS certificate chain and key (PEM)\n"
    "  --dev DIR                 development mode: create (once) a CA, a server certificate for\n"
    "                            localhost/127.0.0.1/::1 and a config with a random root key in DIR\n"
    "  --config FILE             relay rules and hybrid connections (JSON; see README)\n"
    "  --state FILE              control-plane database (SQLite; default DIR/state.db with --dev)\n"
    "  --directory FILE          tenant, subscriptions and principals (JSON; default DIR/directory.json)\n"
    "  --idp-key FILE            token signing key, RSA PEM, created if missing (default DIR/idp.key)\n"
    "  --public-url URL          how clients reach this hub (default https://ADDR:PORT); the\n"
    "                            issuer is URL/adfs, the ARM token audience URL/\n"
    "  --credential-ttl SECONDS  lifetime of listClusterUserCredential relay tokens (default 3600)\n"
    "  --token-ttl SECONDS       lifetime of the demo issuer's access and id tokens (default 3600)\n"
    "  --refresh-token-ttl SEC   how long a person's sign-in (refresh token) lasts (default 86400)\n"
    "  --trust-issuer URL --trust-audience AUD --trust-jwks-file FILE\n"
    "                            also accept ARM callers' tokens from this issuer (Entra ID:\n"
    "                            https://login.microsoftonline.com/<tenant>/v2.0 and its keys)\n"
    "  --no-demo-issuer          production: serve no demo issuer (/adfs, /msi) and trust only\n"
    "                            --trust-issuer tokens; the directory still names tenant,\n"
    "                            subscriptions and owners\n"
    "  --heartbeat-interval SEC  agents report this often; after three missed, Offline (default 60)\n"
    "  --ping-interval SECONDS   ping idle listener control channels (default 30)\n"
    "  --rendezvous-timeout SEC  how long an accept address lives (default 10, max 30)\n"
    "  --stall-timeout SECONDS   close a relayed peer that stops reading (default 60)\n"
    "  --max-listeners N         listeners per hybrid connection (default 25)\n"
    "  --port-file FILE          write the bound port here once listening\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  --version, --help\n"
    "\n"
    "Without --state and --directory (or --dev) only the relay runs.\n"
    "It prints \"arc-hub: listening on https://ADDR:PORT\" once it accepts connections.\n";

typedef struct routes {
    idp_t *idp;
    arm_t *arm;
} routes;

/* The front door's table: each part on the path prefixes it serves (a
 * part still answers only the paths it knows within them). */
static int mount_relay(hub_t *h, relay_t *relay)
{
    return hub_mount_takeover(h, "/$hc/", 0, relay_take, relay) ||
           hub_mount_takeover(h, "/%24hc/", 0, relay_take, relay) || hub_hook(h, &relay_hooks, relay);
}

static int mount_control_plane(hub_t *h, const routes *rt, int demo_issuer)
{
    if (demo_issuer &&
        (hub_mount(h, "/adfs/", 0, idp_route, rt->idp) || hub_mount(h, "/msi/token", 0, idp_route, rt->idp) ||
         hub_mount(h, "/graph/v1.0/", 0, graph_route, rt->idp)))
        return -1;
    return hub_mount(h, "/agent/v1/", 0, agentapi_route, rt->arm) ||
           hub_mount(h, "/tenants", 0, tenants_route, rt->arm) ||
           hub_mount(h, "/subscriptions", HUB_NOCASE, arm_route, rt->arm) ||
           /* az asks for cloud metadata at "//metadata/endpoints" too */
           hub_mount(h, "/metadata/endpoints", 0, arm_route, rt->arm) ||
           hub_mount(h, "//", 0, arm_route, rt->arm) || hub_hook(h, &arm_hooks, rt->arm);
}

static uv_signal_t sigint_h, sigterm_h;
static hub_t *g_hub;

static void on_signal(uv_signal_t *s, int signum)
{
    log_kv(LOG_INFO, "hub.stop", "signal", signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    hub_shutdown(g_hub);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
    (void)s;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Creates DIR/{ca.pem,ca.key,server.pem,server.key,config.json} where
 * missing, so a restart keeps the same CA and keys. */
static int prepare_dev(const char *dir, char *cert, char *key, char *cfg, size_t cap)
{
    char err[256], ca_pem[4096], ca_key[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "arc-hub: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
    snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
    snprintf(cert, cap, "%s/server.pem", dir);
    snprintf(key, cap, "%s/server.key", dir);
    snprintf(cfg, cap, "%s/config.json", dir);
    if (access(ca_pem, R_OK) != 0 || access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
        EVP_PKEY *cak = NULL, *sk = NULL;
        X509 *ca = NULL, *sc = NULL;
        int rc = cert_make_ca("connectedk8s dev CA", 3650, &cak, &ca, err) ||
                 cert_make_leaf(cak, ca, "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", 1, 825, &sk, &sc,
                                err) ||
                 cert_write_pem(ca_pem, ca, NULL, err) || cert_write_pem(ca_key, NULL, cak, err) ||
                 cert_write_pem(cert, sc, NULL, err) || cert_write_pem(key, NULL, sk, err);
        EVP_PKEY_free(cak);
        EVP_PKEY_free(sk);
        X509_free(ca);
        X509_free(sc);
        if (rc) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return -1;
        }
        chmod(ca_pem, 0644);
        chmod(cert, 0644);
    }
    if (access(cfg, R_OK) != 0) {
        static const char *const names[] = {"demo", NULL};
        if (hubcfg_write_dev(cfg, names, err) < 0) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return -1;
        }
    }
    printf("arc-hub: development mode; trust %s (e.g. NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE); "
           "relay keys in %s\n",
           ca_pem, cfg);
    return 0;
}

int main(int argc, char **argv)
{
    char host[256] = "127.0.0.1";
    int port = 8443;
    const char *cert = NULL, *key = NULL, *cfg_path = NULL, *dev = NULL, *port_file = NULL;
    const char *state_path = NULL, *dir_path = NULL, *idp_key = NULL, *public_url = NULL;
    char dev_cert[4096], dev_key[4096], dev_cfg[4096], dev_state[4096], dev_dir[4096], dev_idp[4096];
    unsigned cred_ttl = 3600, heartbeat_s = 60, token_ttl = 3600, rt_ttl = 86400;
    const char *trust_iss = NULL, *trust_aud = NULL, *trust_jwks = NULL;
    int demo_issuer = 1;
    relay_opts ro = relay_default_opts;
    unsigned v;
    json_init(NULL); /* before any cJSON use: trees that lost a member are refused */

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL()                                                                                           \
    do {                                                                                                     \
        if (!val) {                                                                                          \
            fprintf(stderr, "arc-hub: %s needs a value (see --help)\n", a);                                  \
            return 2;                                                                                        \
        }                                                                                                    \
        i++;                                                                                                 \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            puts("arc-hub " ARC_HUB_VERSION);
            return 0;
        } else if (!strcmp(a, "--listen")) {
            NEED_VAL();
            char aerr[128];
            if (conn_parse_addr(val, host, sizeof host, &port, aerr) < 0) {
                fprintf(stderr, "arc-hub: --listen: %s\n", aerr);
                return 2;
            }
        } else if (!strcmp(a, "--cert")) {
            NEED_VAL();
            cert = val;
        } else if (!strcmp(a, "--key")) {
            NEED_VAL();
            key = val;
        } else if (!strcmp(a, "--config")) {
            NEED_VAL();
            cfg_path = val;
        } else if (!strcmp(a, "--dev")) {
            NEED_VAL();
            dev = val;
        } else if (!strcmp(a, "--state")) {
            NEED_VAL();
            state_path = val;
        } else if (!strcmp(a, "--directory")) {
            NEED_VAL();
            dir_path = val;
        } else if (!strcmp(a, "--idp-key")) {
            NEED_VAL();
            idp_key = val;
        } else if (!strcmp(a, "--public-url")) {
            NEED_VAL();
            if (strncmp(val, "https://", 8) != 0 || strlen(val) > 400 || val[strlen(val) - 1] == '/') {
                fprintf(stderr, "arc-hub: --public-url wants https://HOST[:PORT] without a trailing slash\n");
                return 2;
            }
            public_url = val;
        } else if (!strcmp(a, "--credential-ttl")) {
            NEED_VAL();
            if (parse_uint(val, 86400, &cred_ttl) < 0 || cred_ttl < 10) {
                fprintf(stderr, "arc-hub: --credential-ttl wants 10..86400 seconds\n");
                return 2;
            }
        } else if (!strcmp(a, "--token-ttl")) {
            NEED_VAL();
            /* Short lifetimes are for tests of refreshing. */
            if (parse_uint(val, 86400, &token_ttl) < 0 || token_ttl < 1) {
                fprintf(stderr, "arc-hub: --token-ttl wants 1..86400 seconds\n");
                return 2;
            }
        } else if (!strcmp(a, "--refresh-token-ttl")) {
            NEED_VAL();
            if (parse_uint(val, 90 * 86400, &rt_ttl) < 0 || rt_ttl < 1) {
                fprintf(stderr, "arc-hub: --refresh-token-ttl wants 1..7776000 seconds\n");
                return 2;
            }
        } else if (!strcmp(a, "--trust-issuer")) {
            NEED_VAL();
            trust_iss = val;
        } else if (!strcmp(a, "--trust-audience")) {
            NEED_VAL();
            trust_aud = val;
        } else if (!strcmp(a, "--no-demo-issuer")) {
            demo_issuer = 0;
        } else if (!strcmp(a, "--trust-jwks-file")) {
            NEED_VAL();
            trust_jwks = val;
        } else if (!strcmp(a, "--heartbeat-interval")) {
            NEED_VAL();
            if (parse_uint(val, 3600, &heartbeat_s) < 0 || heartbeat_s < 1) {
                fprintf(stderr, "arc-hub: --heartbeat-interval wants 1..3600 seconds\n");
                return 2;
            }
        } else if (!strcmp(a, "--port-file")) {
            NEED_VAL();
            port_file = val;
        } else if (!strcmp(a, "--ping-interval") || !strcmp(a, "--rendezvous-timeout") ||
                   !strcmp(a, "--stall-timeout") || !strcmp(a, "--max-listeners")) {
            NEED_VAL();
            /* Fractions of a second are accepted for tests: "0.5". */
            double d = strtod(val, NULL);
            int is_rdv = !strcmp(a, "--rendezvous-timeout");
            if (!strcmp(a, "--max-listeners")) {
                if (parse_uint(val, 1000, &v) < 0 || v == 0) {
                    fprintf(stderr, "arc-hub: --max-listeners wants 1..1000\n");
                    return 2;
                }
                ro.max_listeners = (int)v;
                continue;
            }
            if (d <= 0 || d > (is_rdv ? 30 : 86400)) {
                fprintf(stderr, "arc-hub: %s wants a number of seconds%s\n", a, is_rdv ? " up to 30" : "");
                return 2;
            }
            unsigned ms = (unsigned)(d * 1000);
            if (!strcmp(a, "--ping-interval"))
                ro.ping_interval_ms = ms;
            else if (is_rdv)
                ro.rendezvous_ms = ms;
            else
                ro.stall_ms = ms;
        } else if (!strcmp(a, "--log-level")) {
            NEED_VAL();
            int lv = !strcmp(val, "debug")   ? LOG_DEBUG
                     : !strcmp(val, "info")  ? LOG_INFO
                     : !strcmp(val, "warn")  ? LOG_WARN
                     : !strcmp(val, "error") ? LOG_ERROR
                                             : -1;
            if (lv < 0) {
                fprintf(stderr, "arc-hub: --log-level wants debug, info, warn or error\n");
                return 2;
            }
            log_set_level(lv);
        } else {
            fprintf(stderr, "arc-hub: unknown option %s (see --help)\n", a);
            return 2;
        }
#undef NEED_VAL
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    char err0[256];
    if (dev) {
        if (prepare_dev(dev, dev_cert, dev_key, dev_cfg, sizeof dev_cert) < 0)
            return 1;
        if (!cert)
            cert = dev_cert;
        if (!key)
            key = dev_key;
        if (!cfg_path)
            cfg_path = dev_cfg;
        snprintf(dev_state, sizeof dev_state, "%s/state.db", dev);
        snprintf(dev_dir, sizeof dev_dir, "%s/directory.json", dev);
        snprintf(dev_idp, sizeof dev_idp, "%s/idp.key", dev);
        if (!state_path)
            state_path = dev_state;
        if (!dir_path)
            dir_path = dev_dir;
        if (!idp_key)
            idp_key = dev_idp;
        if (access(dev_dir, R_OK) != 0 && idp_write_dev_directory(dev_dir, err0) < 0) {
            fprintf(stderr, "arc-hub: %s\n", err0);
            return 1;
        }
    }
    if ((state_path != NULL) != (dir_path != NULL)) {
        fprintf(stderr, "arc-hub: the control plane needs both --state and --directory\n");
        return 2;
    }
    if (!cert || !key) {
        fprintf(stderr, "arc-hub: give --cert and --key (PEM files), or --dev DIR for a development setup\n");
        return 2;
    }
    char err[256];
    hubcfg cfg = {0};
    if (cfg_path && hubcfg_load(cfg_path, &cfg, err) < 0) {
        fprintf(stderr, "arc-hub: %s\n", err);
        return 1;
    }
    if (!cfg_path)
        fprintf(stderr, "arc-hub: no --config: the relay has no keys and will refuse every client\n");
    tls_ctx *tls = tls_server_ctx(cert, key, NULL, err);
    if (!tls) {
        fprintf(stderr, "arc-hub: %s\n", err);
        return 1;
    }
    tls_ctx_set_alpn(tls, "http/1.1");

    uv_loop_t *loop = uv_default_loop();
    relay_t *relay = relay_new(loop, &ro);
    if (!relay || relay_load_cfg(relay, &cfg) < 0) {
        fprintf(stderr, "arc-hub: out of memory\n");
        return 1;
    }
    hubcfg_free(&cfg);
    static routes rt;
    hub_opts ho = {
        .host = host, .port = port, .head_timeout_ms = 10000, .max_body = 1 << 20, .conn = conn_default_opts};
    char lerr[128];
    g_hub = hub_new(loop, tls, &ho, lerr);
    if (!g_hub) {
        fprintf(stderr, "arc-hub: %s\n", lerr);
        return 1;
    }
    if (mount_relay(g_hub, relay) != 0) {
        fprintf(stderr, "arc-hub: the front door's route table is full\n");
        return 1;
    }
    int bound = hub_port(g_hub);
    int v6 = strchr(host, ':') != NULL;
    char url[512];
    if (public_url)
        snprintf(url, sizeof url, "%s", public_url);
    else
        snprintf(url, sizeof url, "https://%s%s%s:%d", v6 ? "[" : "",
                 !strcmp(host, "0.0.0.0") ? "127.0.0.1"
                 : !strcmp(host, "::")    ? "::1"
                                          : host,
                 v6 ? "]" : "", bound);
    store_t *store = NULL;
    verify_t *verifier = NULL;
    if (state_path) {
        char key_path[4200];
        if (!idp_key)
            snprintf(key_path, sizeof key_path, "%s.idp.key", state_path);
        if (!(store = store_open(state_path, err)) ||
            !(rt.idp = idp_new(dir_path, idp_key ? idp_key : key_path, url, err))) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return 1;
        }
        if (idp_sessions(rt.idp, store, (int)token_ttl, (int)rt_ttl) < 0) {
            fprintf(stderr, "arc-hub: out of memory\n");
            return 1;
        }
        if ((trust_iss || trust_aud || trust_jwks) && (!trust_iss || !trust_aud || !trust_jwks)) {
            fprintf(stderr, "arc-hub: --trust-issuer needs --trust-audience and --trust-jwks-file\n");
            return 2;
        }
        if (!demo_issuer && !trust_iss) {
            fprintf(stderr,
                    "arc-hub: --no-demo-issuer needs --trust-issuer: nobody could call the control plane\n");
            return 2;
        }
        /* Whom ARM believes: the demo issuer (unless left out), then the
         * trusted external one. */
        if (!(verifier = verify_new()) ||
            (demo_issuer && verify_trust_keys(verifier, idp_issuer(rt.idp), idp_keys(rt.idp)) < 0)) {
            fprintf(stderr, "arc-hub: out of memory\n");
            return 1;
        }
        if (trust_iss && verify_trust_jwks_file(verifier, trust_iss, trust_aud, trust_jwks, err) < 0) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return 1;
        }
        arm_opts ao = {.loop = loop,
                       .verify = verifier,
                       .public_url = url,
                       .credential_ttl = (int)cred_ttl,
                       .heartbeat_s = (int)heartbeat_s};
        if (!(rt.arm = arm_new(store, rt.idp, relay, &ao, err))) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return 1;
        }
        if (mount_control_plane(g_hub, &rt, demo_issuer) != 0) {
            fprintf(stderr, "arc-hub: the front door's route table is full\n");
            return 1;
        }
        if (dev) {
            /* The agent verifies user tokens with this key set. */
            char jwks_path[4200];
            snprintf(jwks_path, sizeof jwks_path, "%s/jwks.json", dev);
            const char *jwks = idp_jwks(rt.idp);
            if (file_write_atomic(jwks_path, jwks, strlen(jwks), 0644, 0, err) < 0) {
                fprintf(stderr, "arc-hub: %s\n", err);
                return 1;
            }
        }
        if (demo_issuer)
            printf("arc-hub: control plane at %s (issuer %s)\n", url, idp_issuer(rt.idp));
        else
            printf("arc-hub: control plane at %s (issuer %s; no demo issuer)\n", url, trust_iss);
    }
    if (port_file) {
        char pb[16];
        int pn = snprintf(pb, sizeof pb, "%d\n", bound);
        if (file_write_atomic(port_file, pb, (size_t)pn, 0644, 0, err) < 0) {
            fprintf(stderr, "arc-hub: %s\n", err);
            return 1;
        }
    }
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    printf("arc-hub: listening on https://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", bound);
    {
        char ps[8];
        snprintf(ps, sizeof ps, "%d", bound);
        log_kv(LOG_INFO, "hub.start", "version", ARC_HUB_VERSION, "listen", host, "port", ps, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    hub_free(g_hub);
    arm_free(rt.arm);
    verify_free(verifier);
    idp_free(rt.idp);
    store_close(store);
    relay_free(relay);
    tls_ctx_free(tls);
    uv_loop_close(loop);
    return 0;
}

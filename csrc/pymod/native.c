/* azext_connectedk8s._native: the only C file that includes Python.h.
 *
 * Built against the stable ABI (Py_LIMITED_API) with multi-phase
 * initialisation and per-module state, so one abi3 wheel serves every
 * CPython that az ships and the module survives sub-interpreters. The
 * core it wraps (csrc/core) knows nothing of Python.
 *
 * Errors: every failure of the core carries a stable code (AZK8S08xx
 * style, see ERRORS below) and is raised as NativeError(code, message);
 * the az extension maps codes to azclierror classes in one table. */
#define Py_LIMITED_API 0x030A0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "enc.h"
#include "kubeconfig.h"
#include "log.h"
#include "proxy.h"
#include "sas.h"

#define NATIVE_VERSION "0.1.0"

typedef struct {
    PyObject *NativeError;
    PyObject *logger; /* where the core's log events go (set_logger), or NULL */
} native_state;

static native_state *get_state(PyObject *module)
{
    return (native_state *)PyModule_GetState(module);
}

/* Stable error codes of the native core and their one-line meaning. The
 * Python layer keys its exception mapping on these strings. */
static const struct {
    const char *code, *what;
} ERRORS[] = {
    {"AZK8S0890", "invalid argument to the native core"},
    {"AZK8S0801", "the local proxy port is in use"     },
    {"AZK8S0802", "the local proxy could not listen"   },
    {"AZK8S0803", "TLS or certificate set-up failed"   },
    {"AZK8S0820", "the kubeconfig could not be merged" },
};
enum { E_ARG, E_PORT, E_LISTEN, E_TLS, E_KUBECONFIG };

static PyObject *raise_native(PyObject *module, int idx, const char *detail)
{
    PyObject *args = Py_BuildValue("(ss)", ERRORS[idx].code, detail ? detail : ERRORS[idx].what);
    if (args) {
        PyErr_SetObject(get_state(module)->NativeError, args);
        Py_DECREF(args);
    }
    return NULL;
}

PyDoc_STRVAR(version_doc, "version() -> str\n\nVersion of the native core.");
static PyObject *native_version(PyObject *module, PyObject *unused)
{
    (void)module, (void)unused;
    return PyUnicode_FromString(NATIVE_VERSION);
}

PyDoc_STRVAR(sas_token_doc, "sas_token(resource, key_name, key, expiry) -> str\n\n"
                            "A Shared Access Signature for `resource` (a URI) valid until `expiry`\n"
                            "(seconds since the epoch), signed with the key string `key`.");
static PyObject *native_sas_token(PyObject *module, PyObject *args)
{
    const char *resource, *key_name, *key;
    long long expiry;
    if (!PyArg_ParseTuple(args, "sssL:sas_token", &resource, &key_name, &key, &expiry))
        return NULL;
    if (!*resource || !*key_name || !*key || expiry <= 0)
        return raise_native(module, E_ARG,
                            "resource, key_name and key must be non-empty and expiry positive");
    char out[SAS_MAX_TOKEN + 1];
    long n = sas_create(resource, key_name, key, (int64_t)expiry, out, sizeof out);
    if (n < 0)
        return raise_native(module, E_ARG, "resource or key name too long for a SAS token");
    return PyUnicode_FromStringAndSize(out, n);
}

PyDoc_STRVAR(session_certs_doc, "session_certs() -> dict\n\n"
                                "A fresh CA, a server certificate for 127.0.0.1/::1/localhost and a client\n"
                                "certificate, all PEM, valid for this proxy session only (keys never\n"
                                "leave memory except the client pair written into the kubeconfig).");
static PyObject *native_session_certs(PyObject *module, PyObject *unused)
{
    (void)unused;
    EVP_PKEY *cak = NULL, *sk = NULL, *ck = NULL;
    X509 *ca = NULL, *sc = NULL, *cc = NULL;
    char err[CERT_ERRLEN];
    PyObject *out = NULL;
    if (cert_make_ca("connectedk8s proxy session CA", 30, &cak, &ca, err) ||
        cert_make_leaf(cak, ca, "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", 1, 30, &sk, &sc, err) ||
        cert_make_leaf(cak, ca, "connectedk8s-proxy-user", NULL, 0, 30, &ck, &cc, err)) {
        raise_native(module, E_TLS, err);
        goto out;
    }
    char *p[5] = {cert_pem(ca), cert_pem(sc), cert_key_pem(sk), cert_pem(cc), cert_key_pem(ck)};
    if (p[0] && p[1] && p[2] && p[3] && p[4])
        out = Py_BuildValue("{s:s,s:s,s:s,s:s,s:s}", "ca", p[0], "server_cert", p[1], "server_key", p[2],
                            "client_cert", p[3], "client_key", p[4]);
    else
        raise_native(module, E_TLS, "cannot encode the session certificates");
    for (int i = 0; i < 5; i++) {
        if (p[i])
            OPENSSL_cleanse(p[i], strlen(p[i]));
        free(p[i]);
    }
out:
    EVP_PKEY_free(cak), EVP_PKEY_free(sk), EVP_PKEY_free(ck);
    X509_free(ca), X509_free(sc), X509_free(cc);
    return out;
}

PyDoc_STRVAR(agent_identity_doc,
             "agent_identity() -> (private_key_pem, public_key_b64)\n\n"
             "A fresh RSA-2048 identity for a cluster agent: the private key goes into the\n"
             "cluster, the public half (base64 DER) into agentPublicKeyCertificate.");
static PyObject *native_agent_identity(PyObject *module, PyObject *unused)
{
    (void)unused;
    EVP_PKEY *k = EVP_RSA_gen(2048);
    char *pem = k ? cert_key_pem(k) : NULL, *pub = k ? cert_pubkey_b64(k) : NULL;
    PyObject *out = NULL;
    if (pem && pub)
        out = Py_BuildValue("(ss)", pem, pub);
    else
        raise_native(module, E_TLS, "cannot create the agent's key pair");
    if (pem)
        OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    free(pub);
    EVP_PKEY_free(k);
    return out;
}

/* Reads entry fields from a dict; missing optional ones are NULL. The
 * strings live as long as the dict. */
static int entry_from_dict(PyObject *d, kcfg_entry *e)
{
    memset(e, 0, sizeof *e);
    static const char *const names[] = {"cluster", "server",           "ca_data",
                                        "user",    "client_cert_data", "client_key_data",
                                        "token",   "context",          "namespace"};
    const char **slots[] = {&e->cluster,         &e->server, &e->ca_data, &e->user,  &e->client_cert_data,
                            &e->client_key_data, &e->token,  &e->context, &e->nspace};
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "entry must be a dict");
        return -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        PyObject *v = PyDict_GetItemString(d, names[i]);
        if (!v || v == Py_None)
            continue;
        const char *s = PyUnicode_AsUTF8AndSize(v, NULL);
        if (!s)
            return -1;
        *slots[i] = s;
    }
    return 0;
}

PyDoc_STRVAR(merge_kubeconfig_doc,
             "merge_kubeconfig(path, entry) -> None\n\n"
             "Merges cluster/user/context `entry` (dict: cluster, server, ca_data, user,\n"
             "client_cert_data, client_key_data, token, context, namespace) into the\n"
             "kubeconfig at `path`: by name, other entries kept, current-context set,\n"
             "atomic, locked, mode 0600. A malformed file is refused and left as it is.");
static PyObject *native_merge_kubeconfig(PyObject *module, PyObject *args)
{
    const char *path;
    PyObject *d;
    kcfg_entry e;
    if (!PyArg_ParseTuple(args, "sO:merge_kubeconfig", &path, &d) || entry_from_dict(d, &e) < 0)
        return NULL;
    char err[KCFG_ERRLEN];
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = kcfg_merge_file(path, &e, err);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return raise_native(module, E_KUBECONFIG, err);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(render_kubeconfig_doc,
             "render_kubeconfig(entry) -> str\n\nA standalone kubeconfig holding `entry`.");
static PyObject *native_render_kubeconfig(PyObject *module, PyObject *args)
{
    PyObject *d;
    kcfg_entry e;
    if (!PyArg_ParseTuple(args, "O:render_kubeconfig", &d) || entry_from_dict(d, &e) < 0)
        return NULL;
    char err[KCFG_ERRLEN], *out = NULL;
    size_t n;
    if (kcfg_merge("", 0, &e, &out, &n, err) < 0)
        return raise_native(module, E_KUBECONFIG, err);
    PyObject *r = PyUnicode_FromStringAndSize(out, (Py_ssize_t)n);
    free(out);
    return r;
}

/* ---- the core's log events, through Python's logging ---- */

/* The core's sink (log.h): called on whichever thread logs, the proxy
 * loop's with the GIL released or a caller's with it held; the GIL is
 * taken either way, and an exception already pending in the caller is
 * kept aside so that logging never swallows or replaces it. */
static void py_log_sink(void *ud, int level, const char *text)
{
    static const int pylevel[] = {10, 20, 30, 40}; /* logging.DEBUG .. logging.ERROR */
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethod((PyObject *)ud, "log", "is", pylevel[level & 3], text);
    if (!r)
        PyErr_Clear(); /* a broken handler must not break the proxy */
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    PyGILState_Release(g);
}

PyDoc_STRVAR(set_logger_doc, "set_logger(logger, level) -> None\n\n"
                             "Sends the core's log events to logger.log(level, text) instead of JSON lines\n"
                             "on stderr, for events at or above `level` (a logging level: the lowest any\n"
                             "handler would show; events below it are not even formatted). None restores\n"
                             "the JSON lines.");
static PyObject *native_set_logger(PyObject *module, PyObject *args)
{
    PyObject *logger;
    int level = 30;
    if (!PyArg_ParseTuple(args, "O|i", &logger, &level))
        return NULL;
    native_state *st = get_state(module);
    PyObject *old = st->logger;
    if (logger == Py_None) {
        log_set_sink(NULL, NULL);
        log_set_level(LOG_INFO);
        st->logger = NULL;
    } else {
        Py_INCREF(logger);
        st->logger = logger;
        log_set_sink(py_log_sink, logger);
        log_set_level(level <= 10   ? LOG_DEBUG
                      : level <= 20 ? LOG_INFO
                      : level <= 30 ? LOG_WARN
                      : level <= 40 ? LOG_ERROR
                                    : LOG_ERROR + 1);
    }
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

/* ---- the proxy loop ---- */

typedef struct pyctx {
    PyObject *on_ready, *refresh, *on_event;
} pyctx;

static void copy_str(PyObject *d, const char *k, char *out, size_t cap, int *ok)
{
    PyObject *v = PyDict_GetItemString(d, k);
    const char *s = v && v != Py_None ? PyUnicode_AsUTF8AndSize(v, NULL) : NULL;
    if (!s || strlen(s) >= cap) {
        *ok = 0;
        return;
    }
    memcpy(out, s, strlen(s) + 1);
}

static long long get_ll(PyObject *d, const char *k, int *ok)
{
    PyObject *v = PyDict_GetItemString(d, k);
    if (!v || v == Py_None)
        return 0;
    long long r = PyLong_AsLongLong(v);
    if (r == -1 && PyErr_Occurred()) {
        *ok = 0;
        PyErr_Clear();
    }
    return r;
}

/* creds dict: relay, hc, sas, sas_expiry, token, token_expiry. GIL held. */
static int creds_from_dict(PyObject *d, proxy_creds *c)
{
    memset(c, 0, sizeof *c);
    int ok = PyDict_Check(d);
    if (!ok)
        return -1;
    copy_str(d, "relay", c->relay, sizeof c->relay, &ok);
    copy_str(d, "hc", c->hc, sizeof c->hc, &ok);
    copy_str(d, "sas", c->sas, sizeof c->sas, &ok);
    PyObject *t = PyDict_GetItemString(d, "token");
    if (t && t != Py_None)
        copy_str(d, "token", c->token, sizeof c->token, &ok);
    c->sas_expiry = get_ll(d, "sas_expiry", &ok);
    c->token_expiry = get_ll(d, "token_expiry", &ok);
    return ok ? 0 : -1;
}

static void py_report_exception(char *err, size_t cap)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *m = s ? PyUnicode_AsUTF8AndSize(s, NULL) : NULL;
    snprintf(err, cap, "%s", m ? m : "the refresh callback failed");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

static int cb_refresh(void *ud, proxy_creds *out, char err[PROXY_ERRLEN])
{
    pyctx *x = ud;
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = -1;
    PyObject *r = PyObject_CallObject(x->refresh, NULL);
    if (!r) {
        py_report_exception(err, PROXY_ERRLEN);
    } else if (creds_from_dict(r, out) < 0) {
        PyErr_Clear();
        snprintf(err, PROXY_ERRLEN, "the refresh callback returned incomplete credentials");
    } else {
        rc = 0;
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

static void cb_event(void *ud, const char *name, const char *detail)
{
    pyctx *x = ud;
    if (!x->on_event)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(x->on_event, "ss", name, detail);
    if (!r)
        PyErr_Clear();
    Py_XDECREF(r);
    PyGILState_Release(g);
}

static void cb_ready(void *ud, int port)
{
    pyctx *x = ud;
    if (!x->on_ready)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(x->on_ready, "i", port);
    if (!r)
        PyErr_Clear();
    Py_XDECREF(r);
    PyGILState_Release(g);
}

PyDoc_STRVAR(run_proxy_doc, "run_proxy(config, creds, on_ready=None, refresh=None, on_event=None) -> dict\n\n"
                            "Runs the local proxy until Ctrl+C (SIGINT) or SIGTERM, with the GIL released.\n"
                            "config: port, server_cert, server_key, client_ca, relay_ca (or None), pool,\n"
                            "refresh_margin. creds: relay, hc, sas, sas_expiry, token, token_expiry.\n"
                            "on_ready(port) runs once the port accepts connections; refresh() runs on a\n"
                            "worker thread before credentials expire and returns a new creds dict;\n"
                            "on_event(name, detail) reports refreshes and relay refusals. Returns\n"
                            "counters (connections, requests, pool_hits...) and the stopping signal.");
static PyObject *native_run_proxy(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"config", "creds", "on_ready", "refresh", "on_event", NULL};
    PyObject *cfg, *cd;
    pyctx x = {NULL, NULL, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOO:run_proxy", kwlist, &cfg, &cd, &x.on_ready, &x.refresh,
                                     &x.on_event))
        return NULL;
    if (x.on_ready == Py_None)
        x.on_ready = NULL;
    if (x.refresh == Py_None)
        x.refresh = NULL;
    if (x.on_event == Py_None)
        x.on_event = NULL;
    proxy_creds *creds = calloc(1, sizeof *creds);
    if (!creds)
        return PyErr_NoMemory();
    if (!PyDict_Check(cfg) || creds_from_dict(cd, creds) < 0) {
        free(creds);
        return raise_native(module, E_ARG,
                            "config and creds must be dicts with relay, hc, sas and sas_expiry");
    }
    proxy_opts o = {0};
    int ok = 1;
    o.port = (int)get_ll(cfg, "port", &ok);
    o.pool = PyDict_GetItemString(cfg, "pool") ? (int)get_ll(cfg, "pool", &ok) : 2;
    o.refresh_margin = (int)get_ll(cfg, "refresh_margin", &ok);
    PyObject *v;
    const char **strs[] = {&o.server_cert_pem, &o.server_key_pem, &o.client_ca_pem, &o.relay_ca_file,
                           &o.host};
    const char *keys[] = {"server_cert", "server_key", "client_ca", "relay_ca", "host"};
    for (int i = 0; i < 5; i++)
        if ((v = PyDict_GetItemString(cfg, keys[i])) && v != Py_None &&
            !(*strs[i] = PyUnicode_AsUTF8AndSize(v, NULL)))
            ok = 0;
    if (!ok || o.port < 0 || o.port > 65535) {
        free(creds);
        PyErr_Clear();
        return raise_native(module, E_ARG, "config: port 0-65535 and PEM strings expected");
    }
    o.ud = &x;
    o.on_ready = cb_ready;
    o.refresh = x.refresh ? cb_refresh : NULL;
    o.event = cb_event;
    proxy_stats st;
    char err[PROXY_ERRLEN];
    /* libuv takes SIGINT/SIGTERM while the loop runs; Python's handlers
     * come back afterwards. */
    struct sigaction old_int, old_term;
    sigaction(SIGINT, NULL, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = proxy_run(&o, creds, &st, err);
    Py_END_ALLOW_THREADS
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    OPENSSL_cleanse(creds, sizeof *creds);
    free(creds);
    if (rc != PROXY_OK)
        return raise_native(module,
                            rc == PROXY_ERR_PORT_IN_USE ? E_PORT
                            : rc == PROXY_ERR_TLS       ? E_TLS
                            : rc == PROXY_ERR_LISTEN    ? E_LISTEN
                                                        : E_ARG,
                            err);
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:i}", "connections", (unsigned long long)st.connections,
        "requests", (unsigned long long)st.requests, "upgrades", (unsigned long long)st.upgrades, "pool_hits",
        (unsigned long long)st.pool_hits, "pool_misses", (unsigned long long)st.pool_misses, "refreshes",
        (unsigned long long)st.refreshes, "refresh_failures", (unsigned long long)st.refresh_failures,
        "relay_refusals", (unsigned long long)st.relay_refusals, "signal", st.stop_signal);
}

PyDoc_STRVAR(stop_proxy_doc, "stop_proxy() -> None\n\nAsks a running proxy (any thread) to stop.");
static PyObject *native_stop_proxy(PyObject *module, PyObject *unused)
{
    (void)module, (void)unused;
    proxy_stop();
    Py_RETURN_NONE;
}

static PyMethodDef native_methods[] = {
    {"session_certs",     native_session_certs,                          METH_NOARGS,                  session_certs_doc    },
    {"agent_identity",    native_agent_identity,                         METH_NOARGS,                  agent_identity_doc   },
    {"merge_kubeconfig",  native_merge_kubeconfig,                       METH_VARARGS,                 merge_kubeconfig_doc },
    {"render_kubeconfig", native_render_kubeconfig,                      METH_VARARGS,                 render_kubeconfig_doc},
    {"run_proxy",         (PyCFunction)(void (*)(void))native_run_proxy, METH_VARARGS | METH_KEYWORDS, run_proxy_doc        },
    {"stop_proxy",        native_stop_proxy,                             METH_NOARGS,                  stop_proxy_doc       },
    {"set_logger",        native_set_logger,                             METH_VARARGS,                 set_logger_doc       },
    {"version",           native_version,                                METH_NOARGS,                  version_doc          },
    {"sas_token",         native_sas_token,                              METH_VARARGS,                 sas_token_doc        },
    {NULL,                NULL,                                          0,                            NULL                 },
};

static int native_exec(PyObject *module)
{
    native_state *st = get_state(module);
    st->NativeError = PyErr_NewExceptionWithDoc(
        "azext_connectedk8s._native.NativeError",
        "A failure of the native core. args: (code, message); code is stable (AZK8S08xx).", NULL, NULL);
    if (!st->NativeError)
        return -1;
    Py_INCREF(st->NativeError);
    if (PyModule_AddObject(module, "NativeError", st->NativeError) < 0) {
        Py_DECREF(st->NativeError);
        return -1;
    }
    return PyModule_AddStringConstant(module, "__version__", NATIVE_VERSION);
}

static int native_traverse(PyObject *module, visitproc visit, void *arg)
{
    Py_VISIT(get_state(module)->NativeError);
    Py_VISIT(get_state(module)->logger);
    return 0;
}

static int native_clear(PyObject *module)
{
    native_state *st = get_state(module);
    if (st->logger) /* the core must not call a logger that is going away */
        log_set_sink(NULL, NULL);
    Py_CLEAR(st->NativeError);
    Py_CLEAR(st->logger);
    return 0;
}

static void native_free(void *module)
{
    native_clear((PyObject *)module);
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
    {0,           NULL       },
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "azext_connectedk8s._native",
    "Native core of the connectedk8s az extension (relay, TLS, kubeconfig).",
    sizeof(native_state),
    native_methods,
    native_slots,
    native_traverse,
    native_clear,
    native_free,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}

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
#define Py_LIMITED_API 0x03080000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "sas.h"

#define NATIVE_VERSION "0.1.0"

typedef struct {
    PyObject *NativeError;
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
};

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

PyDoc_STRVAR(sas_token_doc,
             "sas_token(resource, key_name, key, expiry) -> str\n\n"
             "A Shared Access Signature for `resource` (a URI) valid until `expiry`\n"
             "(seconds since the epoch), signed with the key string `key`.");
static PyObject *native_sas_token(PyObject *module, PyObject *args)
{
    const char *resource, *key_name, *key;
    long long expiry;
    if (!PyArg_ParseTuple(args, "sssL:sas_token", &resource, &key_name, &key, &expiry))
        return NULL;
    if (!*resource || !*key_name || !*key || expiry <= 0)
        return raise_native(module, 0, "resource, key_name and key must be non-empty and expiry positive");
    char out[SAS_MAX_TOKEN + 1];
    long n = sas_create(resource, key_name, key, (int64_t)expiry, out, sizeof out);
    if (n < 0)
        return raise_native(module, 0, "resource or key name too long for a SAS token");
    return PyUnicode_FromStringAndSize(out, n);
}

static PyMethodDef native_methods[] = {
    {"version", native_version, METH_NOARGS, version_doc},
    {"sas_token", native_sas_token, METH_VARARGS, sas_token_doc},
    {NULL, NULL, 0, NULL},
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
    return 0;
}

static int native_clear(PyObject *module)
{
    Py_CLEAR(get_state(module)->NativeError);
    return 0;
}

static void native_free(void *module)
{
    native_clear((PyObject *)module);
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
    {0, NULL},
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

"""Stable error codes of the native core and what to tell the user.

Each code (AZK8S08xx, like Microsoft's extension) maps to one azclierror
class and one recommendation. Codes never change meaning."""
from azure.cli.core.azclierror import CLIInternalError, ClientRequestError, FileOperationError, UnclassifiedUserFault

RECOMMEND = {
    "AZK8S0801": "Close what uses the port, or run the proxy on another one with --port.",
    "AZK8S0802": "Check that 127.0.0.1 can be bound on this machine.",
    "AZK8S0803": "This is a bug or a broken OpenSSL installation; report it with the output of `az version`.",
    "AZK8S0820": "Fix or move the kubeconfig file, or write to another one with --file (or print with --file -).",
    "AZK8S0890": "This is a bug in the extension; report it with the output of `az version`.",
}
# Raised from ARM answers (_arm.py): AZK8S0811 cluster not found,
# AZK8S0812 no permission, AZK8S0813 sign-in token rejected.
# Reported while the proxy runs (warnings, and Status messages kubectl
# prints), never raised:
#   AZK8S0830 the relay is unreachable
#   AZK8S0831 no cluster agent is listening (cluster offline or cluster-connect off)
#   AZK8S0832 the relay refused the credential
#   AZK8S0833 a credential refresh failed (retried with backoff)
CLASSES = {
    "AZK8S0801": ClientRequestError,
    "AZK8S0802": ClientRequestError,
    "AZK8S0803": UnclassifiedUserFault,
    "AZK8S0820": FileOperationError,
    # The extension handed the core something it refuses (the user's input
    # was validated before): an internal error, not the user's fault.
    "AZK8S0890": CLIInternalError,
}
UNKNOWN = "This is a bug: the extension does not know this error code of its native core; report it."


def from_native(err, extra=""):
    """An azclierror for a NativeError(code, message). A code missing from
    CLASSES means the extension and its native module disagree: a
    CLIInternalError."""
    code, message = err.args[0], err.args[1]
    cls = CLASSES.get(code, CLIInternalError)
    e = cls("%s: %s%s" % (code, message, extra))
    e.set_recommendation(RECOMMEND.get(code, UNKNOWN))
    return e


def port_owner(port):
    """'pid N (name)' of the process listening on a TCP port, if visible."""
    import os
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % inode)
        except OSError:
            continue
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    with open("/proc/%s/comm" % pid) as f:
                        return "pid %s (%s)" % (pid, f.read().strip())
        except OSError:
            continue
    return None

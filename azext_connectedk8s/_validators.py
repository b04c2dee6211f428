"""Argument validators, wired in _params.py with `validator=`.

az runs them after parsing (and after the confirmation prompt of
disable-features) and before the command, so a bad value fails before
any sign-in or request with an InvalidArgumentValueError that says which
values are accepted and a recommendation that says what to give instead.
Validators may normalise the namespace; custom.py then trusts it."""
import os

from azure.cli.core.azclierror import InvalidArgumentValueError

# What enable-features/disable-features accept, in the order they are
# reported and written to arcAgentryConfigurations.
FEATURES = ("cluster-connect", "azure-rbac", "custom-locations")
PORT_MIN, PORT_MAX = 1, 65535   # the proxy needs a fixed port kubectl can be told; 0 (any) is refused
POOL_MIN, POOL_MAX = 0, 16


def _invalid(message, recommendation):
    err = InvalidArgumentValueError(message)
    err.set_recommendation(recommendation)
    return err


def validate_port(namespace):
    """--port of `proxy`: a TCP port kubectl can reach, 1-65535."""
    port = getattr(namespace, "api_server_port", None)
    if port is None:
        return
    if not PORT_MIN <= port <= PORT_MAX:
        raise _invalid("--port must be between %d and %d; got %d." % (PORT_MIN, PORT_MAX, port),
                       "Give a free local TCP port, e.g. --port 47011 (the default).")


def validate_pool_size(namespace):
    """--pool-size of `proxy`: relay connections kept ready, 0-16."""
    pool = getattr(namespace, "pool", None)
    if pool is None:
        return
    if not POOL_MIN <= pool <= POOL_MAX:
        raise _invalid("--pool-size must be between %d and %d; got %d." % (POOL_MIN, POOL_MAX, pool),
                       "Use 0 to open a relay connection per kubectl connection, or up to %d to keep that many "
                       "ready (default 2)." % POOL_MAX)


def parse_features(values):
    """The feature names in --features values: each value may hold several
    names separated by commas; names are case-insensitive and surrounding
    spaces are ignored. Returns them lower-cased, in order, repeats kept."""
    names = []
    for value in values or []:
        for name in value.split(","):
            name = name.strip().lower()
            if name not in FEATURES:
                what = "Unknown feature '%s'." % name if name else "Empty feature name in '--features %s'." % value
                raise _invalid("%s Use one or more of: %s." % (what, ", ".join(FEATURES)),
                               "Separate names with spaces or commas, e.g. --features cluster-connect azure-rbac.")
            names.append(name)
    return names


def validate_features(namespace):
    """--features of enable-features/disable-features: replaces the raw
    values with the list of lower-cased names."""
    namespace.features = parse_features(namespace.features)


def validate_identity_prefixes(namespace):
    """--username-prefix / --groups-prefix of `connect`: printable text,
    since the agent puts it into Impersonate-User / Impersonate-Group
    header values (it refuses control characters there)."""
    for opt, attr in (("--username-prefix", "username_prefix"), ("--groups-prefix", "groups_prefix")):
        v = getattr(namespace, attr, None)
        if v and any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in v):
            raise _invalid("%s must not contain control characters." % opt,
                           "Give printable text, e.g. %s aad: (or leave it out for none)." % opt)


def _proxy_display(url):
    """scheme://host:port of a proxy URL: never its user or password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(a proxy URL)"
    return "%s://%s" % (scheme, rest.split("/", 1)[0].rpartition("@")[2])


def validate_proxy_settings(namespace):
    """--proxy-https / --proxy-http / --proxy-cert of `connect`: http:// or
    https:// URLs with a host (a bare host:port gets http://, as curl and
    the agent read it); messages name the proxy without its password; the
    CA file must exist and is read into --proxy-cert's place."""
    for opt, attr in (("--proxy-https", "proxy_https"), ("--proxy-http", "proxy_http")):
        v = getattr(namespace, attr, None)
        if not v:
            continue
        if "://" not in v:
            v = "http://" + v
            setattr(namespace, attr, v)
        scheme, _, rest = v.partition("://")
        host = rest.split("/", 1)[0].rpartition("@")[2]
        if scheme.lower() not in ("http", "https") or not host or any(ch.isspace() for ch in v):
            raise _invalid("%s must be an http:// or https:// proxy URL with a host; got %s." % (
                opt, _proxy_display(v)), "Give e.g. %s http://proxy.corp:3128." % opt)
    cert = getattr(namespace, "proxy_cert", None)
    if cert and not os.path.isfile(cert):
        raise _invalid("--proxy-cert %s is not a readable file." % cert,
                       "Give the path of the proxy's CA certificate (PEM).")
    if (getattr(namespace, "proxy_skip_range", None) or cert) and not (
            getattr(namespace, "proxy_https", None) or getattr(namespace, "proxy_http", None)):
        raise _invalid("--proxy-skip-range and --proxy-cert need --proxy-https or --proxy-http.",
                       "Add --proxy-https http://proxy.corp:3128.")

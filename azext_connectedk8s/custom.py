"""Implementations of the az connectedk8s commands."""
import base64
import json
import os
import time

from knack.log import get_logger

from azext_connectedk8s import _arm
from azext_connectedk8s._errors import from_native, port_owner

logger = get_logger(__name__)

# The audience tokens for the cluster agent carry in Microsoft Entra mode:
# Azure Arc's cluster-connect server application. Self-hosted setups may
# use their own (the agent's --audience); CONNECTEDK8S_AGENT_AUDIENCE
# overrides it here.
AGENT_AUDIENCE = "6256c85f-0aad-4d50-b960-e6e9b21efe35"
DEFAULT_PORT = 47011


def _flatten(c):
    out = {k: v for k, v in c.items() if k != "properties"}
    out.update(c.get("properties") or {})
    parts = c.get("id", "").split("/")
    low = [p.lower() for p in parts]
    if "resourcegroups" in low:
        out["resourceGroup"] = parts[low.index("resourcegroups") + 1]
    return out


def show(cmd, resource_group_name, cluster_name):
    return _flatten(_arm.call(cmd, "GET", _arm.cluster_id(cmd, resource_group_name, cluster_name),
                              what="Reading the cluster"))


def list_clusters(cmd, resource_group_name=None):
    sub = _arm.subscription(cmd)
    if resource_group_name:
        path = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Kubernetes/connectedClusters" % (
            sub, resource_group_name)
    else:
        path = "/subscriptions/%s/providers/Microsoft.Kubernetes/connectedClusters" % sub
    return [_flatten(c) for c in (_arm.call(cmd, "GET", path, what="Listing clusters") or {}).get("value", [])]


def delete(cmd, resource_group_name, cluster_name):
    _arm.call(cmd, "DELETE", _arm.cluster_id(cmd, resource_group_name, cluster_name), what="Deleting the cluster")


# ---- proxy -------------------------------------------------------------


def _jwt_exp(token):
    try:
        payload = token.split(".")[1]
        return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
    except Exception:  # not a JWT (opaque token): assume an hour
        return int(time.time()) + 3600


def _credentials(cmd, cid, token):
    """Relay credential (listClusterUserCredential) plus the bearer for the
    agent: the given service-account token, or an access token for the
    agent's audience from the signed-in identity."""
    body = {"authenticationMethod": "Token" if token else "AAD", "clientProxy": True}
    cred = _arm.call(cmd, "POST", cid + "/listClusterUserCredential", body, what="Getting the cluster credential")
    hc = (cred or {}).get("hybridConnectionConfig")
    if not hc:
        from azure.cli.core.azclierror import AzureResponseError
        raise AzureResponseError("listClusterUserCredential returned no hybridConnectionConfig.")
    creds = {"relay": hc["relay"], "hc": hc["hybridConnectionName"], "sas": hc["token"],
             "sas_expiry": int(hc["expirationTime"])}
    if token:
        creds.update(token=token, token_expiry=0)
    else:
        from azure.cli.core._profile import Profile
        audience = os.environ.get("CONNECTEDK8S_AGENT_AUDIENCE", AGENT_AUDIENCE)
        raw = Profile(cli_ctx=cmd.cli_ctx).get_raw_token(resource=audience)[0]
        access = raw[1]
        creds.update(token=access, token_expiry=_jwt_exp(access))
    return creds


def _kubeconfig_target(path):
    if path:
        return os.path.expanduser(path)
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return os.path.expanduser(first) if first else os.path.join(os.path.expanduser("~"), ".kube", "config")


def proxy(cmd, resource_group_name, cluster_name, token=None, path=None, context_name=None,
          api_server_port=DEFAULT_PORT, pool=2):
    from azure.cli.core.azclierror import InvalidArgumentValueError
    from azext_connectedk8s import _native
    if not 0 < int(api_server_port) < 65536:
        raise InvalidArgumentValueError("--port must be between 1 and 65535.")
    if pool is not None and not 0 <= pool <= 16:
        raise InvalidArgumentValueError("--pool-size must be between 0 and 16.")
    cid = _arm.cluster_id(cmd, resource_group_name, cluster_name)
    cluster = _arm.call(cmd, "GET", cid, what="Reading the cluster")  # a clear 404 before anything else
    status = ((cluster or {}).get("properties") or {}).get("connectivityStatus")
    if status and status != "Connected":
        logger.warning("AZK8S0831: the cluster agent is not connected (connectivityStatus %s); kubectl requests "
                       "will fail until it reconnects.", status)
    creds = _credentials(cmd, cid, token)
    certs = _native.session_certs()
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    context = context_name or cluster_name
    entry = {"cluster": context, "server": "https://127.0.0.1:%d" % api_server_port, "ca_data": b64(certs["ca"]),
             "user": "clusterUser_%s_%s" % (resource_group_name, cluster_name),
             "client_cert_data": b64(certs["client_cert"]), "client_key_data": b64(certs["client_key"]),
             "context": context}
    target = _kubeconfig_target(path)
    printed = path == "-"
    if printed:
        print(_native.render_kubeconfig(entry), flush=True)
    else:
        try:
            _native.merge_kubeconfig(target, entry)
        except _native.NativeError as e:
            raise from_native(e) from None
        print('Merged "%s" as current context in %s' % (context, target), flush=True)

    def on_ready(port):
        print("Proxy is listening on port %d" % port, flush=True)
        print("Press Ctrl+C to close proxy.", flush=True)

    def refresh():
        return _credentials(cmd, cid, token)

    def on_event(name, detail):
        if name == "proxy.refresh_failed" or name == "proxy.relay_refused":
            logger.warning(detail)
        else:
            logger.info(detail)

    config = {"port": api_server_port, "server_cert": certs["server_cert"], "server_key": certs["server_key"],
              "client_ca": certs["ca"], "relay_ca": os.environ.get("REQUESTS_CA_BUNDLE") or None,
              "pool": 2 if pool is None else pool}
    try:
        stats = _native.run_proxy(config, creds, on_ready=on_ready, refresh=refresh, on_event=on_event)
    except _native.NativeError as e:
        extra = ""
        if e.args[0] == "AZK8S0801":
            owner = port_owner(api_server_port)
            extra = " (held by %s)" % owner if owner else ""
        raise from_native(e, extra) from None
    logger.info("proxy stats: %s", stats)
    print("Proxy closed.", flush=True)

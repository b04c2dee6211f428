"""Implementations of the az connectedk8s commands."""
import base64
import json
import os
import time

from knack.log import get_logger

from azext_connectedk8s import _arm
from azext_connectedk8s._errors import from_native, port_owner
from azext_connectedk8s._validators import FEATURES

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


SELECTOR = "app.kubernetes.io/part-of=connectedk8s"


def delete(cmd, resource_group_name, cluster_name, kube_config=None, kube_context=None):
    """Deletes the resource, then the agent from the cluster. The resource
    goes first: a cluster we cannot reach must not keep a resource alive."""
    from azext_connectedk8s import _kube
    cid = _arm.cluster_id(cmd, resource_group_name, cluster_name)
    _arm.call(cmd, "GET", cid, what="Reading the cluster")
    _arm.call(cmd, "DELETE", cid, what="Deleting the cluster")
    try:
        r1 = _kube.delete(kube_config, kube_context, "namespace", SELECTOR)
        r2 = _kube.delete(kube_config, kube_context, "clusterrole,clusterrolebinding", SELECTOR)
        failed = [r for r in (r1, r2) if r.returncode != 0]
    except Exception as e:  # kubectl missing or the cluster unreachable
        failed = [e]
    if failed:
        logger.warning("The resource is deleted, but the agent could not be removed from the cluster (%s). Remove it "
                       "with: kubectl delete namespace,clusterrole,clusterrolebinding -l %s",
                       getattr(failed[0], "stderr", str(failed[0])).strip()[:300], SELECTOR)


def connect(cmd, resource_group_name, cluster_name, location="local", kube_config=None, kube_context=None,
            distribution="generic", infrastructure="generic", timeout=600, username_claim="upn", username_prefix="",
            groups_prefix="", agent_image=None, agent_host_network=False, proxy_https=None, proxy_http=None,
            proxy_skip_range=None, proxy_cert=None):
    """Creates the resource with a fresh agent identity, installs the agent
    with server-side apply, then waits until the agent reports."""
    from azure.cli.core.azclierror import (AzureResponseError, ResourceNotFoundError, ValidationError)
    from azext_connectedk8s import _kube, _manifests
    from azext_connectedk8s._corelog import native
    _native = native()
    cid = _arm.cluster_id(cmd, resource_group_name, cluster_name)
    version = _kube.server_version(kube_config, kube_context)  # fail early when the cluster is unreachable
    logger.warning("Cluster reachable (Kubernetes %s).", version or "version unknown")
    try:
        _arm.call(cmd, "GET", cid, what="Reading the cluster")
        err = ValidationError("The connected cluster %s already exists in resource group %s." % (
            cluster_name, resource_group_name))
        err.set_recommendation("Delete it first (az connectedk8s delete), or pick another name.")
        raise err
    except ResourceNotFoundError:
        pass
    key_pem, pub_b64 = _native.agent_identity()
    body = {"location": location, "identity": {"type": "SystemAssigned"},
            "properties": {"agentPublicKeyCertificate": pub_b64, "distribution": distribution,
                           "infrastructure": infrastructure}}
    _arm.call(cmd, "PUT", cid, body, what="Creating the connected cluster")
    logger.warning("Created %s; installing the agent into the cluster ...", cid)
    hub = cmd.cli_ctx.cloud.endpoints.resource_manager.rstrip("/")
    ca = os.environ.get("REQUESTS_CA_BUNDLE")
    ca_pem = open(ca).read() if ca and os.path.isfile(ca) else None
    proxy_cert_pem = open(proxy_cert).read() if proxy_cert else None  # checked by validate_proxy_settings
    _kube.apply(kube_config, kube_context, _manifests.agent_objects(
        hub, cid, key_pem, ca_pem, username_claim=username_claim, username_prefix=username_prefix,
        groups_prefix=groups_prefix, image=agent_image, host_network=agent_host_network, proxy_https=proxy_https,
        proxy_http=proxy_http, proxy_skip_range=proxy_skip_range, proxy_cert_pem=proxy_cert_pem))
    logger.warning("Agent installed in namespace %s. Waiting up to %ds for it to report ...",
                   _manifests.NAMESPACE, timeout)
    deadline, last, shown = time.time() + timeout, None, 0.0
    while True:
        c = _arm.call(cmd, "GET", cid, what="Reading the cluster")
        status = (c.get("properties") or {}).get("connectivityStatus")
        if status == "Connected":
            logger.warning("The agent is connected.")
            return _flatten(c)
        if status != last or time.time() - shown > 15:
            logger.warning("  connectivityStatus: %s (%ds left)", status, int(deadline - time.time()))
            last, shown = status, time.time()
        if time.time() > deadline:
            err = AzureResponseError("The agent did not report within %ds (connectivityStatus %s)." % (timeout, status))
            err.set_recommendation("Check the agent: kubectl -n %s get pods; kubectl -n %s logs "
                                   "deploy/clusterconnect-agent. It must reach %s over HTTPS."
                                   % (_manifests.NAMESPACE, _manifests.NAMESPACE, hub))
            raise err
        time.sleep(2)


def _features_of(props):
    on = {"cluster-connect": True, "azure-rbac": bool((props.get("aadProfile") or {}).get("enableAzureRBAC")),
          "custom-locations": False}
    for f in props.get("arcAgentryConfigurations") or []:
        name = (f.get("feature") or "").lower()
        if name in on:
            on[name] = str((f.get("settings") or {}).get("enabled", "")).lower() == "true"
    return on


def _set_features(cmd, resource_group_name, cluster_name, features, enable, kube_config, kube_context):
    from azure.cli.core.azclierror import ValidationError
    from azext_connectedk8s import _kube, _manifests
    wanted = list(features)  # lower-cased known names: _validators.validate_features
    cid = _arm.cluster_id(cmd, resource_group_name, cluster_name)
    c = _arm.call(cmd, "GET", cid, what="Reading the cluster")
    props = c.get("properties") or {}
    on = _features_of(props)
    new = dict(on)
    for name in wanted:
        new[name] = enable
    if new["custom-locations"] and not new["cluster-connect"]:
        if not enable:
            raise ValidationError("Disabling 'cluster-connect' feature is not allowed when 'custom-locations' feature "
                                  "is enabled.")
        raise ValidationError("Enabling 'custom-locations' needs 'cluster-connect'; enable both together.")
    configs = [f for f in props.get("arcAgentryConfigurations") or []
               if (f.get("feature") or "").lower() not in FEATURES]
    configs += [{"feature": name, "settings": {"enabled": "true" if new[name] else "false"}} for name in FEATURES]
    if "azure-rbac" in wanted:
        # The agent checks Azure scopes; the API server applies the verbs
        # through these bindings (see _manifests.azure_rbac_objects).
        if enable:
            _kube.apply(kube_config, kube_context, _manifests.azure_rbac_objects())
        else:
            _kube.run(kube_config, kube_context, "delete", "clusterrolebinding", "--ignore-not-found",
                      *["connectedk8s-azure-rbac-" + lv for lv in _manifests.RBAC_LEVELS])
    updated = _arm.call(cmd, "PATCH", cid, {"properties": {"arcAgentryConfigurations": configs}},
                        what="Updating the features")
    logger.warning("%s %s; the agent applies it at its next heartbeat.", "Enabled" if enable else "Disabled",
                   ", ".join(wanted))
    return _flatten(updated)


def enable_features(cmd, resource_group_name, cluster_name, features, kube_config=None, kube_context=None):
    return _set_features(cmd, resource_group_name, cluster_name, features, True, kube_config, kube_context)


def disable_features(cmd, resource_group_name, cluster_name, features, kube_config=None, kube_context=None):
    return _set_features(cmd, resource_group_name, cluster_name, features, False, kube_config, kube_context)


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
    cred = _arm.call(cmd, "POST", cid + "/listClusterUserCredential", body, what="Getting the cluster credential",
                     secret=True)
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
    """The kubeconfig file `proxy` merges into, by kubectl's rules: --file
    if given, else the first entry of $KUBECONFIG, else ~/.kube/config.
    None for --file -: the kubeconfig goes to stdout, no file is touched."""
    if path == "-":
        return None
    if path:
        return os.path.expanduser(path)
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return os.path.expanduser(first) if first else os.path.join(os.path.expanduser("~"), ".kube", "config")


def proxy(cmd, resource_group_name, cluster_name, token=None, path=None, context_name=None,
          api_server_port=DEFAULT_PORT, pool=2):
    # --port and --pool-size are checked by _validators before this runs.
    from azext_connectedk8s._corelog import native
    _native = native()
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
    if target is None:
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

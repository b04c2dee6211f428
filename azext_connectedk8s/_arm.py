"""ARM calls through azure-cli core, so the active cloud decides where ARM
is and the signed-in identity authorizes them."""
import json

from azure.cli.core.azclierror import (AzureResponseError, ClientRequestError, ResourceNotFoundError,
                                       UnauthorizedError)

from azure.core.exceptions import ServiceRequestError  # azure-core comes with every azure-cli-core
from requests.exceptions import ConnectionError as RequestsConnectionError, SSLError

API_VERSION = "2024-01-01"
# What a request that never got an answer raises: requests' connection
# errors (send_raw_request), azure-core's (token acquisition through SDK
# pipelines), az's own ClientRequestError, and the OS's.
_UNREACHABLE = (RequestsConnectionError, ServiceRequestError, ClientRequestError, ConnectionError)
CC = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Kubernetes/connectedClusters/{}"


def _base(cmd):
    return cmd.cli_ctx.cloud.endpoints.resource_manager.rstrip("/")


def subscription(cmd):
    from azure.cli.core.commands.client_factory import get_subscription_id
    return get_subscription_id(cmd.cli_ctx)


def cluster_id(cmd, rg, name):
    return CC.format(subscription(cmd), rg, name)


class _NoSecrets:
    """A logging filter for azure-cli core's request/response logging
    (on with --verbose/--debug): the credential answer carries a relay SAS
    token, which must never reach a terminal or a log."""

    def filter(self, record):
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is not ours to judge
            return True
        return "SharedAccessSignature" not in text and "listenToken" not in text


def call(cmd, method, path, body=None, what="the request", secret=False):
    """One ARM call; ARM errors become azclierror classes with ARM's message.
    secret=True keeps the answer out of az's --verbose/--debug logging."""
    import logging
    if secret:
        filt = _NoSecrets()
        loggers = [logging.getLogger(n) for n in ("cli.azure.cli.core.util", "azure.cli.core.util")]
        for lg in loggers:
            lg.addFilter(filt)
        try:
            return call(cmd, method, path, body, what)
        finally:
            for lg in loggers:
                lg.removeFilter(filt)
    from azure.cli.core.azclierror import HTTPError
    from azure.cli.core.util import send_raw_request
    sep = "&" if "?" in path else "?"
    url = "%s%s%sapi-version=%s" % (_base(cmd), path, sep, API_VERSION)
    try:
        r = send_raw_request(cmd.cli_ctx, method, url, body=json.dumps(body) if body is not None else None)
    except HTTPError as e:  # send_raw_request's: carries the response
        status = getattr(getattr(e, "response", None), "status_code", None)
        code, message = _arm_error(e)
        if status == 404:
            err = ResourceNotFoundError("AZK8S0811: " + message)
            err.set_recommendation("Check the name, the resource group and the subscription (az account show).")
        elif status == 403:
            err = UnauthorizedError("AZK8S0812: %s: %s" % (code, message))
            err.set_recommendation("Ask an owner for a role on the cluster: reading needs Reader, the proxy needs "
                                   "'Azure Arc Enabled Kubernetes Cluster User Role'.")
        elif status == 401:
            err = UnauthorizedError("AZK8S0813: %s: %s" % (code, message))
            err.set_recommendation("Sign in again with az login (the token was rejected or has expired).")
        else:
            err = AzureResponseError("%s failed: %s: %s" % (what, code, message))
        raise err from None
    except _UNREACHABLE as e:
        if isinstance(e, SSLError):  # az's own handler explains certificate trouble (REQUESTS_CA_BUNDLE)
            raise
        raise ClientRequestError("Cannot reach ARM at %s: %s" % (_base(cmd), e)) from None
    if r.status_code == 204 or not r.content:
        return None
    return r.json()


def _arm_error(e):
    try:
        body = e.response.json()
        err = body.get("error") or {}
        return err.get("code", "Error"), err.get("message", str(e))
    except Exception:  # not JSON
        msg = str(e)
        # send_raw_request puts "Code(body)" into the message; keep it readable.
        return "Error", msg

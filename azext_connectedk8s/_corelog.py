"""The native core's log events, through az's logging.

In the az process the core does not write its JSON lines to stderr: its
events go to a knack logger, so `--debug` shows them, `--verbose` shows
its info events, a default run shows only its warnings and errors, and
`--only-show-errors` only its errors. The daemons keep their JSON lines."""
import logging

from knack.log import get_logger

CORE_LOGGER = "azext_connectedk8s.core"


def shown_level(lg):
    """The lowest level any handler on lg's way up would emit (logging.CRITICAL
    + 1 when none would): knack sets its loggers to DEBUG and filters in the
    handlers, so the logger's own level says nothing."""
    lowest = logging.CRITICAL + 1
    cur = lg
    while cur is not None:
        for h in cur.handlers:
            lowest = min(lowest, h.level)
        if not cur.propagate:
            break
        cur = cur.parent
    return max(lowest, lg.getEffectiveLevel())


def native():
    """The native module, with its events routed to CORE_LOGGER."""
    from azext_connectedk8s import _native
    lg = get_logger(CORE_LOGGER)
    _native.set_logger(lg, shown_level(lg))
    return _native

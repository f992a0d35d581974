"""The defaults of every Warren client wrapper, as in the repository's
clients/defaults.json (tests/test_policy.py compares the two)."""

# An unroutable message (no queue bound to its routing key) is an error
# (FatalError, FAILED_PRECONDITION) instead of a silent drop.
PUBLISH_MANDATORY = True
SUBSCRIBER_MAX_IN_FLIGHT = 16
ELECTOR_HEARTBEAT_INTERVAL_SECONDS = 1.0
ELECTOR_REJOIN_AFTER_EXPIRY = True

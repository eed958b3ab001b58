"""Exceptions whose class names become the Step Functions error names (errorType)."""


class WandbOpsError(Exception):
    """Base class: a failure the product explains, as opposed to a bug."""


class InvalidInputError(WandbOpsError):
    """The event given to a function does not match its documented input."""


class ConfigurationError(WandbOpsError):
    """The function's environment (from the template parameters) is incomplete or wrong."""


class AwsThrottledError(WandbOpsError):
    """AWS kept throttling after the SDK's own retries; the state machine retries with backoff."""

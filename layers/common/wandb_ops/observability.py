"""The one place that creates the Powertools Logger, Tracer and Metrics.

Every function logs under the same service name; the function name comes from the
Lambda context that ``logger.inject_lambda_context`` adds to each line.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "wandb-ops"
METRICS_NAMESPACE = "WandbOps"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

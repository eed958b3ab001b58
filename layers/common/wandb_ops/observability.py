"""The one place that creates the Powertools Logger, Tracer and Metrics.

Every function logs under the same service name; the function name comes from the
Lambda context that ``logger.inject_lambda_context`` adds to each line.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "wandb-ops"
METRICS_NAMESPACE = "WandbOps"

# Only the AWS calls are traced. The default patches every library the X-Ray SDK knows that is
# installed (requests, httplib, sqlite3, PyMySQL, ...), importing each one in every function:
# about 40 ms of each cold start (docs/performance.md, "Cold start").
TRACED_LIBRARIES = ("botocore",)

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, patch_modules=TRACED_LIBRARIES)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

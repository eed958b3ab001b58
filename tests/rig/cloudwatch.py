"""CloudWatch in the emulator: the template's alarms, and the metrics the functions print.

moto 5.2.5 creates a template's dashboard but skips its AWS::CloudWatch::Alarm resources (no
CloudFormation model), so a dashboard that lists the alarms fails to deploy, and no test could
read an alarm back. This model creates each alarm with moto's own PutMetricAlarm, metric math
(``Metrics``) included, and answers ``Fn::GetAtt <alarm>.Arn``. Alarms never evaluate here.

CloudWatch turns the embedded metric format (EMF) documents a function prints into metrics;
``publish_embedded_metrics`` does that for one invocation's output with PutMetricData. moto
matches a query's dimensions as a subset of a datum's where CloudWatch wants the same set: a test
that compares an alarm with the metrics compares the dimension names too.
"""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.cloudformation import parsing
from moto.cloudwatch.models import (
    Alarm,
    CloudWatchBackend,
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.core.common_models import CloudFormationModel


class TemplateAlarm(CloudFormationModel):
    def __init__(self, alarm: Alarm) -> None:
        self.alarm = alarm

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @property
    def physical_resource_id(self) -> str:
        return str(self.alarm.name)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name != "Arn":
            raise NotImplementedError(attribute_name)
        return str(self.alarm.alarm_arn)

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "TemplateAlarm":
        backend: CloudWatchBackend = cloudwatch_backends[account_id][region_name]
        properties = cloudformation_json["Properties"]
        alarm = backend.put_metric_alarm(
            name=properties.get("AlarmName", resource_name),
            namespace=properties.get("Namespace", ""),
            metric_name=properties.get("MetricName", ""),
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=properties.get("Period"),  # absent on metric-math alarms
            threshold=float(properties["Threshold"]),
            statistic=properties.get("Statistic"),
            description=properties.get("AlarmDescription", ""),
            dimensions=properties.get("Dimensions", []),
            alarm_actions=properties.get("AlarmActions", []),
            metric_data_queries=[_query(query) for query in properties.get("Metrics", [])] or None,
            datapoints_to_alarm=int(properties["DatapointsToAlarm"]) if "DatapointsToAlarm" in properties else None,
            ok_actions=properties.get("OKActions", []),
            treat_missing_data=properties.get("TreatMissingData"),
        )
        return cls(alarm)


def _query(query: dict[str, Any]) -> MetricDataQuery:
    stat = query.get("MetricStat")
    metric_stat = None
    if stat is not None:
        metric = stat["Metric"]
        dimensions = [Dimension(name=d["Name"], value=d["Value"]) for d in metric.get("Dimensions", [])]
        metric_stat = MetricStat(
            metric=Metric(metric_name=metric["MetricName"], namespace=metric["Namespace"], dimensions=dimensions),
            period=stat["Period"],
            stat=stat["Stat"],
            unit=stat.get("Unit"),
        )
    return MetricDataQuery(
        query_id=query["Id"],
        label=query.get("Label", ""),
        period=query.get("Period"),  # type: ignore[arg-type] # absent: None, as moto's own parser passes
        return_data=query.get("ReturnData", True),
        expression=query.get("Expression"),
        metric_stat=metric_stat,
    )


def install() -> None:
    """Make moto's CloudFormation see the model (its model list is computed once and cached)."""
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _cloudwatch(region: str) -> Any:
    """A client of its own session: a test's hooks and the benchmark's call counts on the default
    session see only the functions' calls, not CloudWatch's own work."""
    with _clients_lock:
        if region not in _clients:
            _clients[region] = boto3.session.Session().client("cloudwatch", region_name=region)
        return _clients[region]


def embedded_metrics(lines: list[str]) -> Iterator[dict[str, Any]]:
    """The EMF documents among a function's printed lines."""
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get("_aws"), dict):
            yield document


def publish_embedded_metrics(lines: list[str], region: str) -> list[dict[str, Any]]:
    """Publish each EMF document's metrics under each of its dimension sets, as CloudWatch does,
    and return the documents."""
    documents = list(embedded_metrics(lines))
    for document in documents:
        aws = document["_aws"]
        timestamp = datetime.fromtimestamp(aws["Timestamp"] / 1000, UTC)
        for directive in aws["CloudWatchMetrics"]:
            data = [
                {
                    "MetricName": metric["Name"],
                    "Dimensions": [{"Name": name, "Value": str(document[name])} for name in dimension_set],
                    "Values": [float(v) for v in (value if isinstance(value, list) else [value])],
                    "Unit": metric.get("Unit", "None"),
                    "Timestamp": timestamp,
                }
                for metric in directive["Metrics"]
                for value in [document[metric["Name"]]]
                for dimension_set in directive["Dimensions"]
            ]
            _cloudwatch(region).put_metric_data(Namespace=directive["Namespace"], MetricData=data)
    return documents

"""Read what the stack's notifications topic published, through an SQS subscription."""

import json
from dataclasses import dataclass

import boto3


@dataclass(frozen=True)
class Notification:
    subject: str | None
    message: str


class TopicInbox:
    def __init__(self, topic_arn: str) -> None:
        self._sqs = boto3.client("sqs")
        self._queue_url = self._sqs.create_queue(QueueName=f"inbox-{topic_arn.rsplit(':', 1)[-1]}")["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def received(self) -> list[Notification]:
        notifications: list[Notification] = []
        while True:
            messages = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return notifications
            for message in messages:
                body = json.loads(message["Body"])
                notifications.append(Notification(body.get("Subject"), body["Message"]))
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

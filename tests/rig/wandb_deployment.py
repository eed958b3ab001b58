"""A simulated W&B deployment in the emulator, shaped like what terraform-aws-wandb
creates (docs/local-rig.md): Aurora MySQL cluster <namespace> with writer <namespace>-1, the
file-storage bucket (SSE-KMS with the module key, unversioned, an SQS notification on
object creation), the KMS key with its alias and rotation off, a master-credentials
secret, and optionally its terraform S3 backend holding the state of a real `terraform apply`.
"""

import json
import os
import secrets
from dataclasses import dataclass

import boto3

from tests.rig.emulator import ACCOUNT_ID
from tests.rig.terraform import TerraformProject


@dataclass(frozen=True)
class SimulatedWandb:
    namespace: str
    region: str
    bucket_name: str
    kms_key_arn: str
    kms_alias: str
    cluster_arn: str
    master_secret_arn: str
    queue_url: str
    object_count: int
    tfstate_bucket: str | None = None
    tfstate_key: str | None = None

    def stack_parameters(self) -> dict[str, str]:
        """The parameters `sam deploy --guided` would be given for this deployment."""
        parameters = {
            "Namespace": self.namespace,
            "FileStorageBucketName": self.bucket_name,
            "KmsKeyArn": self.kms_key_arn,
            "WandbUrl": f"https://{self.namespace}.wandb.example.com",
        }
        if self.tfstate_bucket and self.tfstate_key:
            parameters |= {"TfStateBucketName": self.tfstate_bucket, "TfStateKey": self.tfstate_key}
        return parameters


def _key_policy() -> str:
    # terraform-aws-wandb's policy: kms:* for the terraform caller only (here, the account root).
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Internal",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )


def seed_wandb(
    namespace: str = "wandb",
    *,
    region: str = "us-east-1",
    objects: int = 25,
    deletion_protection: bool = True,
    terraform_state: bool = False,
    port: int = 3306,
) -> SimulatedWandb:
    kms = boto3.client("kms", region_name=region)
    key_arn = kms.create_key(Description=f"{namespace} W&B key", Policy=_key_policy())["KeyMetadata"]["Arn"]
    alias = f"alias/{namespace}-kms-alias"
    kms.create_alias(AliasName=alias, TargetKeyId=key_arn)

    master_password = secrets.token_urlsafe(24)
    rds = boto3.client("rds", region_name=region)
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=namespace,
        Engine="aurora-mysql",
        EngineVersion="8.0.mysql_aurora.3.05.2",
        MasterUsername="wandb",
        MasterUserPassword=master_password,
        DatabaseName="wandb_local",
        StorageEncrypted=True,
        KmsKeyId=key_arn,
        BackupRetentionPeriod=14,
        DeletionProtection=deletion_protection,
        Port=port,
    )["DBCluster"]
    rds.create_db_instance(
        DBInstanceIdentifier=f"{namespace}-1",
        DBClusterIdentifier=namespace,
        Engine="aurora-mysql",
        DBInstanceClass="db.r6g.large",
    )

    secretsmanager = boto3.client("secretsmanager", region_name=region)
    master_secret_arn = secretsmanager.create_secret(
        Name=f"{namespace}/mysql/master",
        SecretString=json.dumps(
            {
                "engine": "mysql",
                "host": cluster["Endpoint"],
                "port": port,
                "username": "wandb",
                "password": master_password,
                "dbname": "wandb_local",
            }
        ),
    )["ARN"]

    s3 = boto3.client("s3", region_name=region)
    bucket = f"{namespace}-file-storage-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]
        },
    )
    sqs = boto3.client("sqs", region_name=region)
    queue_url = sqs.create_queue(QueueName=f"{namespace}-file-storage")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    for index in range(objects):
        s3.put_object(
            Bucket=bucket,
            Key=f"wandb/{namespace}/runs/run-{index // 10:03d}/files/output-{index}.log",
            Body=secrets.token_bytes(64 * (index % 7 + 1)),
        )

    tfstate_bucket = tfstate_key = None
    if terraform_state:
        # The terraform S3 backend bucket, with the state of one real apply in it.
        tfstate_bucket, tfstate_key = f"{namespace}-terraform-state", "wandb/terraform.tfstate"
        s3.create_bucket(Bucket=tfstate_bucket)
        project = TerraformProject({"bucket": tfstate_bucket, "key": tfstate_key}, os.environ["AWS_ENDPOINT_URL"])
        project.apply(revision=1, password=master_password, namespace=namespace)
        project.close()

    return SimulatedWandb(
        namespace=namespace,
        region=region,
        bucket_name=bucket,
        kms_key_arn=key_arn,
        kms_alias=alias,
        cluster_arn=cluster["DBClusterArn"],
        master_secret_arn=master_secret_arn,
        queue_url=queue_url,
        object_count=objects,
        tfstate_bucket=tfstate_bucket,
        tfstate_key=tfstate_key,
    )

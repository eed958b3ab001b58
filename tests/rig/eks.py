"""EKS clusters in the emulator whose DescribeCluster points at a fake API server.

moto creates clusters with a made-up endpoint and a random "CA"; the rig creates the
cluster through the API, then sets the endpoint and the CA (base64 of the PEM, as EKS
returns it) on moto's in-process cluster object.
"""

import base64

import boto3
from moto.eks.models import eks_backends

from tests.rig.emulator import REGION


def register_cluster(name: str, endpoint: str, ca_pem: str, region: str = REGION) -> str:
    """Create EKS cluster `name` answering at `endpoint` with CA `ca_pem`; returns its ARN."""
    account_id = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    cluster = boto3.client("eks", region_name=region).create_cluster(
        name=name,
        roleArn=f"arn:aws:iam::{account_id}:role/{name}-cluster",
        resourcesVpcConfig={"subnetIds": [], "endpointPublicAccess": False, "endpointPrivateAccess": True},
    )["cluster"]
    emulated = eks_backends[account_id][region].clusters[name]
    emulated.endpoint = endpoint
    emulated.certificate_authority = {"data": base64.b64encode(ca_pem.encode()).decode()}
    arn: str = cluster["arn"]
    return arn

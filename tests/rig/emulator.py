"""The moto server, in-process on a free port, as the AWS endpoint for everything.

boto3 reaches it through AWS_ENDPOINT_URL; moto's Step Functions interpreter is
switched on, and its Lambda tasks call back into the same server.
"""

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Emulator:
    server: ThreadedMotoServer
    endpoint: str
    region: str = REGION
    account_id: str = ACCOUNT_ID

    def reset(self) -> None:
        """Forget every resource (all services), keeping the server running."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        self.server.stop()


def _copy_checksum_as_moto_expects(params: dict[str, Any], **_: Any) -> None:
    """moto refuses a CopyObject into an Object Lock bucket unless it carries the header the SDK
    sends for PutObject checksums (x-amz-sdk-checksum-algorithm); botocore sends CopyObject's
    ChecksumAlgorithm as x-amz-checksum-algorithm, which S3 accepts. Mirror it, in the rig only."""
    algorithm = params["headers"].get("x-amz-checksum-algorithm")
    if algorithm:
        params["headers"]["x-amz-sdk-checksum-algorithm"] = algorithm


def start_emulator(region: str = REGION) -> Emulator:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "MOTO_PORT": str(port),  # where moto's Step Functions tasks send their own calls
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
    )
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request drowns the output
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call.s3.CopyObject", _copy_checksum_as_moto_expects)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return Emulator(server=server, endpoint=endpoint, region=region)

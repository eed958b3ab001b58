"""Restore a backed-up Terraform state, verified against the hash it was stored with.

    python scripts/tfstate_restore.py list  --bucket <backup bucket> --workspace backend/default
    python scripts/tfstate_restore.py fetch --bucket <backup bucket> --key <key from list> --out terraform.tfstate

Runs with your own AWS credentials (a role the backup bucket policy lets read states).
`fetch` streams the object to a private temporary file next to --out, checks the hash,
and only then moves it into place; it never overwrites an existing file unless --force.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "common"))

from wandb_ops.access.terraform_state.history import IntegrityError, list_backups, verify_backup
from wandb_ops.access.terraform_state.state_file import InvalidStateError
from wandb_ops.core import aws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list the backups of a workspace")
    listing.add_argument("--bucket", required=True)
    listing.add_argument("--workspace", required=True, help="backend/<workspace> or intake/<workspace>")
    fetch = commands.add_parser("fetch", help="fetch one backup and verify its hash")
    fetch.add_argument("--bucket", required=True)
    fetch.add_argument("--key", required=True)
    fetch.add_argument("--out", required=True, type=Path)
    fetch.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    s3 = aws.client("s3")

    if args.command == "list":
        for entry in list_backups(s3, args.bucket, args.workspace):
            print(
                f"serial {entry.serial:>6}  lineage {entry.lineage}  {entry.size:>10} bytes  "
                f"{entry.stored_at:%Y-%m-%d %H:%M}  {entry.key}"
            )
        return 0

    if args.out.exists() and not args.force:
        print(f"{args.out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    descriptor, temporary = tempfile.mkstemp(dir=args.out.resolve().parent, prefix=".tfstate-restore-")
    try:
        with os.fdopen(descriptor, "wb") as out:  # mkstemp creates it readable by the owner only
            summary = verify_backup(s3, args.bucket, args.key, out=out)
        os.replace(temporary, args.out)
    except (IntegrityError, InvalidStateError) as exc:
        os.unlink(temporary)
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: serial {summary.serial}, lineage {summary.lineage}, sha256 {summary.sha256} (verified)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

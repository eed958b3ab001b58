"""A deterministic stand-in for a W&B file bucket: many small run files, some media and artifact
files, a few checkpoints of several MB, and keys that trip up URL encoding, so a sync tool is
measured on the shape of bucket it will meet, not on one size of object."""

import hashlib
import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * KIB
ENTITIES = ("acme", "vision-team", "nlp-research", "robotics")
PROJECTS = ("baseline", "sweep-lr", "llm-finetune", "segmentation", "rl-agents")
MEDIA = (("images", "png"), ("table", "table.json"), ("audio", "wav"), ("html", "html"))
RUN_FILES = ("output", "config", "wandb-summary", "wandb-metadata", "requirements", "diff")
# Spaces, non-ASCII, '+' (a space in form encoding) and '%' (an escape if decoded twice).
SPECIAL_NAMES = (
    "notes {i}.txt",
    "résumé_数据_{i}.csv",
    "loss+acc_{i}.json",
    "100%_done_{i}.log",
    "a b+c%20d {i}.txt",
    "rocket 🚀 {i}.md",
)


@dataclass(frozen=True)
class SourceObject:
    key: str
    size: int


def generate(count: int, seed: int) -> list[SourceObject]:
    """count objects, the same ones for the same seed: 3% empty, 7% of 10-256 KiB, one in a
    thousand of 2-10 MiB, the rest of 1 B-4 KiB (about 14 MB per 1,000 objects)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    large = set(rng.sample(range(count), max(1, count // 1000)))
    runs = [
        f"wandb/{rng.choice(ENTITIES)}/{rng.choice(PROJECTS)}/runs/{rng.getrandbits(40):010x}"
        for _ in range(max(1, count // 50))
    ]
    objects = []
    for index in range(count):
        digest = f"{rng.getrandbits(128):032x}"
        if index in large:
            key = f"wandb_artifacts/{rng.randrange(10**6)}/{digest}/model-epoch{index}.ckpt"
            objects.append(SourceObject(key, rng.randint(2 * MIB, 10 * MIB)))
            continue
        roll = rng.random()
        if roll < 0.03:
            size = 0
        elif roll < 0.10:
            size = round(10 * KIB * (256 / 10) ** rng.random())  # log-uniform 10-256 KiB
        else:
            size = rng.randint(1, 4 * KIB)
        objects.append(SourceObject(_key(rng, rng.choice(runs), index, digest), size))
    return objects


def _key(rng: random.Random, run: str, index: int, digest: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return f"{run}/files/{rng.choice(SPECIAL_NAMES).format(i=index)}"
    if roll < 0.25:
        return f"wandb_artifacts/{rng.randrange(10**6)}/{digest}/{rng.choice(RUN_FILES)}-{index}.json"
    if roll < 0.35:
        return f"{run}/files/{rng.choice(RUN_FILES)}-{index}.txt"
    kind, extension = rng.choice(MEDIA)
    return f"{run}/files/media/{kind}/{kind}_{index}_{digest[:20]}.{extension}"


def content(seed: int, item: SourceObject) -> bytes:
    """An object's bytes, derived from seed and key so any object can be rebuilt alone."""
    digest = hashlib.sha256(f"{seed}/{item.key}".encode()).digest()
    return random.Random(digest).randbytes(item.size)  # noqa: S311 - test data


def upload(client: Any, bucket: str, objects: Iterable[SourceObject], seed: int, workers: int) -> None:
    """PutObject everything in parallel through the endpoint (the fastest way to fill moto)."""

    def put(item: SourceObject) -> None:
        client.put_object(Bucket=bucket, Key=item.key, Body=content(seed, item))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, objects))


def listing(client: Any, bucket: str) -> dict[str, int]:
    """Every key of a bucket with its size."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


@dataclass(frozen=True)
class Comparison:
    """How a replica's listing differs from the source's; a few keys of each kind as examples."""

    missing: int
    extra: int
    wrong_size: int
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.wrong_size)


def compare(source: dict[str, int], replica: dict[str, int]) -> Comparison:
    missing = sorted(source.keys() - replica.keys())
    extra = sorted(replica.keys() - source.keys())
    wrong = sorted(key for key in source.keys() & replica.keys() if source[key] != replica[key])
    examples = (
        [f"missing {key!r}" for key in missing[:5]]
        + [f"extra {key!r}" for key in extra[:5]]
        + [f"size {key!r}: {source[key]} != {replica[key]}" for key in wrong[:5]]
    )
    return Comparison(len(missing), len(extra), len(wrong), examples)

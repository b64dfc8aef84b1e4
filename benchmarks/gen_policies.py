"""A policies folder with many distinct policies, to measure what the server's memory costs per policy.

    .venv/bin/python benchmarks/gen_policies.py OUT_DIR [--count 100]

writes credito_b2b_000.regua … credito_b2b_099.regua (the bundled B2B policy with its `policy`
header renamed, so each one is published, compiled and held as a policy of its own) plus the
bundled credito_b2c.regua. Used by bench_server.py for the RSS figure.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
B2B = ROOT / "policies" / "credito_b2b.regua"
B2C = ROOT / "policies" / "credito_b2c.regua"
_HEADER = re.compile(r"^policy credito_b2b\b", re.MULTILINE)


def name(index: int) -> str:
    return f"credito_b2b_{index:03d}"


def generate(folder: Path, count: int = 100) -> list[str]:
    """Write the policies into `folder` (created if needed); return the names of the B2B copies."""
    folder.mkdir(parents=True, exist_ok=True)
    source = B2B.read_text(encoding="utf-8")
    if len(_HEADER.findall(source)) != 1:
        raise SystemExit(f"{B2B}: expected exactly one `policy credito_b2b` header")
    names = [name(i) for i in range(count)]
    for policy in names:
        (folder / f"{policy}.regua").write_text(_HEADER.sub(f"policy {policy}", source), encoding="utf-8")
    shutil.copy(B2C, folder / B2C.name)
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    written = generate(args.out_dir, args.count)
    print(f"wrote {len(written)} B2B copies and {B2C.name} to {args.out_dir}")

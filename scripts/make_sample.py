"""Write todrl's embedded MultiWOZ 2.1 sample (``todrl/resources/multiwoz21_sample``) from the full corpus.

    python scripts/make_sample.py [--source ../shared/data/multiwoz21] [--out todrl/resources/multiwoz21_sample]

The sample is what runs when no data is given: tests, the tiny CPU recipe, a
first look.  It keeps the official layout (``data.json``, list files,
``db/``) so it exercises the same reader a full download does.  Dialogues are
chosen deterministically (by a hash of their id) among short ones, with every
domain present and a fixed mix of one-, two- and three-domain dialogues.
Venue and train tables keep the rows the sample's goals and belief states
match (see `needed_rows`), so DB pointers on the gold states equal those of
the full database.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from todrl.data.db import TRAIN_BUCKETS, VENUE_BUCKETS, MultiWozDB
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz, read_records
from todrl.data.normalize import DOMAINS
from todrl.data.records import Dialogue

REPO = Path(__file__).resolve().parents[1]
TRAIN_QUOTAS = {1: 16, 2: 16, 3: 8}
"""Dialogues taken from MultiWOZ val, by number of goal domains; every tenth becomes the sample's val split."""
TEST_QUOTAS = {1: 4, 2: 4, 3: 2}
"""Dialogues taken from MultiWOZ test, by number of goal domains."""
MAX_TURNS = 8
MAX_STATE_ROWS = 1 + max(TRAIN_BUCKETS + VENUE_BUCKETS)
SAMPLED_TABLES = ("restaurant", "hotel", "attraction", "train")
WHOLE_TABLES = ("police", "hospital", "taxi")
"""Small tables copied whole: police and hospital dialogues exist only in MultiWOZ's train split."""


def pick(dialogues: list[Dialogue], quotas: dict[int, int]) -> list[Dialogue]:
    """Deterministic choice: one dialogue per domain first (so every domain occurs), then fill the quotas."""
    candidates = sorted(
        (d for d in dialogues if len(d.turns) <= MAX_TURNS and len(d.goal) in quotas),
        key=lambda d: hashlib.sha1(d.id.encode()).hexdigest(),
    )
    left = dict(quotas)
    chosen: list[Dialogue] = []

    def take(dialogue: Dialogue) -> None:
        chosen.append(dialogue)
        left[len(dialogue.goal)] -= 1

    for domain in DOMAINS:
        if not any(domain in d.goal for d in chosen):
            found = next((d for d in candidates if domain in d.goal and d not in chosen and left[len(d.goal)] > 0), None)
            if found:
                take(found)
    for dialogue in candidates:
        if dialogue not in chosen and left[len(dialogue.goal)] > 0:
            take(dialogue)
    if any(left.values()):
        raise SystemExit(f"not enough dialogues of <= {MAX_TURNS} turns for quotas {quotas}")
    return sorted(chosen, key=lambda d: hashlib.sha1(d.id.encode()).hexdigest())


def needed_rows(db: MultiWozDB, dialogues: list[Dialogue]) -> dict[str, list[int]]:
    """Row numbers, per venue/train table, that the sample's goals and belief states need.

    A goal keeps all its matches (what Inform compares offered venues with); a
    turn's belief state keeps its first `MAX_STATE_ROWS` matches, enough for
    every state to fall in the same DB-pointer bucket as with the full table.
    """
    keys = {domain: {_row_key(row): n for n, row in enumerate(db.query(domain, {}))} for domain in SAMPLED_TABLES}
    needed: dict[str, set[int]] = {domain: set() for domain in SAMPLED_TABLES}
    for dialogue in dialogues:
        queries = [(d, g.informable, None) for d, g in dialogue.goal.items()]
        queries += [(d, slots, MAX_STATE_ROWS) for turn in dialogue.turns for d, slots in turn.belief_state.items()]
        for domain, slots, limit in queries:
            if domain in SAMPLED_TABLES:
                for fuzzy in (False, True):
                    rows = db.query(domain, slots, fuzzy)[:limit]
                    needed[domain].update(keys[domain][_row_key(row)] for row in rows)
    return {domain: sorted(rows) for domain, rows in needed.items()}


def _row_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def official_id(dialogue_id: str) -> str:
    return f"{dialogue_id.upper()}.json"


def write_sample(source: Path, out: Path) -> None:
    train_val = pick(load_multiwoz(source, "val"), TRAIN_QUOTAS)
    test = pick(load_multiwoz(source, "test"), TEST_QUOTAS)
    val = train_val[9::10]
    train = [d for d in train_val if d not in val]
    records = read_records(source, "val") | read_records(source, "test")

    if out.exists():
        shutil.rmtree(out)
    (out / "db").mkdir(parents=True)
    data = {official_id(d.id): records[d.id] for d in train + val + test}
    (out / "data.json").write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
    for name, part in (("trainListFile.txt", train), ("valListFile.txt", val), ("testListFile.txt", test)):
        (out / name).write_text("".join(official_id(d.id) + "\n" for d in part), encoding="utf-8")

    db = MultiWozDB(source / "db")
    for domain, rows in needed_rows(db, train + val + test).items():
        raw = json.loads((source / "db" / f"{domain}_db.json").read_text(encoding="utf-8"))
        kept = [raw[n] for n in rows]
        (out / "db" / f"{domain}_db.json").write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for domain in WHOLE_TABLES:
        shutil.copyfile(source / "db" / f"{domain}_db.json", out / "db" / f"{domain}_db.json")
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    (out / "README.md").write_text(_readme(train, val, test, out), encoding="utf-8")


def _readme(train: list[Dialogue], val: list[Dialogue], test: list[Dialogue], out: Path) -> str:
    tables = ", ".join(
        f"{p.stem.removesuffix('_db')} {len(json.loads(p.read_text()))}" for p in sorted((out / "db").glob("*_db.json"))
    )
    return f"""# MultiWOZ 2.1 sample

A small, deterministic sample of MultiWOZ 2.1 (Budzianowski et al. 2018; Eric et al. 2019),
in the official `data.json` layout, written by `scripts/make_sample.py` from the official
validation and test dialogues. It is what todrl reads when no data is given.

- `data.json`: {len(train) + len(val) + len(test)} dialogues, unchanged from the release.
- Splits: train {len(train)} and val {len(val)} dialogues, all from MultiWOZ 2.1 **val**
  (every tenth in the sample's order is val); test {len(test)} dialogues from MultiWOZ 2.1 **test**.
  Every domain of MultiWOZ val/test occurs (police and hospital dialogues exist only in its train
  split); dialogues have at most {MAX_TURNS} turns.
- `db/`: the official database; the restaurant, hotel, attraction and train tables keep only the
  rows the sample needs: all matches of every goal, and the first {MAX_STATE_ROWS} matches of every
  turn's belief state, so DB pointers computed on gold states are those of the full database
  (rows per table: {tables}). Police, hospital and taxi are copied whole.

MultiWOZ is released under the MIT license; its text is in `LICENSE`.
Regenerate with `python scripts/make_sample.py`.
"""


def _default_source() -> Path:
    root = os.environ.get("TODRL_DATA")
    return Path(root) / "multiwoz21" if root else REPO.parent / "shared" / "data" / "multiwoz21"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=_default_source(), help="folder with val/test MultiWOZ 2.1 and db/")
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = parser.parse_args()
    write_sample(args.source, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

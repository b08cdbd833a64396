"""MultiWOZ database: exact/fuzzy matching, train time semantics, pointers, and the sample's tables."""

from __future__ import annotations

import json

import pytest
from conftest import require_data

from todrl.data.db import POINTERS, MultiWozDB, similar, fuzzy_form
from todrl.data.errors import DataError
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz


@pytest.fixture(scope="session")
def db_dir():
    return require_data("multiwoz21", "db")


@pytest.fixture(scope="session")
def db(db_dir):
    return MultiWozDB(db_dir)


@pytest.fixture(scope="session")
def raw_trains(db_dir):
    return json.loads((db_dir / "train_db.json").read_text())


def test_rows_use_the_shared_slot_names(db):
    train = db.query("train", {"id": "TR7075"})[0]
    assert {"arrive", "leave", "id", "price", "departure", "destination", "day", "duration"} == set(train)
    assert train["id"] == "tr7075"
    assert db.query("attraction", {"name": "abbey pool and astroturf pitch"})[0]["open"] == "?"
    police = db.query("police", {})
    assert police[0]["name"] == "parkside police station"


@pytest.mark.parametrize("leave", ["09:00", "9:00", "after 9am"])
def test_train_leave_means_at_or_after(db, raw_trains, leave):
    constraints = {"departure": "cambridge", "destination": "london kings cross", "day": "monday", "leave": leave}
    found = [(row["id"], row["leave"]) for row in db.query("train", constraints)]
    expected = [
        (r["trainID"].lower(), r["leaveAt"])
        for r in raw_trains
        if (r["departure"], r["destination"], r["day"]) == ("cambridge", "london kings cross", "monday") and r["leaveAt"] >= "09:00"
    ]
    assert found == expected and ("tr7409", "09:00") in found


def test_train_arrive_means_at_or_before(db, raw_trains):
    constraints = {"departure": "cambridge", "destination": "london kings cross", "day": "monday", "arrive": "09:51"}
    found = [row["arrive"] for row in db.query("train", constraints)]
    assert found == ["05:51", "07:51", "09:51"]
    everyday = [r["arriveBy"] for r in raw_trains if r["departure"] == "norwich" and r["arriveBy"] <= "12:00"]
    assert len(db.query("train", {"departure": "norwich", "arrive": "12:00"})) == len(everyday) > 0


def test_trains_arriving_after_midnight_are_late(db, raw_trains):
    after_midnight = sum(r["arriveBy"].startswith("24:") for r in raw_trains)
    assert after_midnight > 0
    assert db.count("train", {"arrive": "23:59"}) == len(raw_trains) - after_midnight
    late = [r for r in db.query("train", {"leave": "20:00"}) if r["arrive"].startswith("24:")]
    assert len(late) == after_midnight


def test_dontcare_unparseable_times_and_booking_slots_constrain_nothing(db):
    everything = db.count("restaurant", {})
    assert everything == 110
    assert db.count("restaurant", {"area": "dontcare", "food": "don't care", "people": "4", "time": "19:00"}) == everything
    assert db.count("train", {"day": "monday", "leave": "after lunch"}) == db.count("train", {"day": "monday"})


def test_exact_match_ignores_case_spaces_and_punctuation(db):
    assert [r["name"] for r in db.query("restaurant", {"name": "Pizza Hut Fenditton"})] == ["pizza hut fen ditton"]
    assert [r["name"] for r in db.query("attraction", {"name": "saint john's college"})] == ["saint john's college"]
    assert db.count("attraction", {"type": "night club"}) == db.count("attraction", {"type": "nightclub"}) == 6
    assert db.count("restaurant", {"name": "caffee uno"}) == 0


def test_fuzzy_name_match(db):
    def names(domain, name):
        return sorted(r["name"] for r in db.query(domain, {"name": name}, fuzzy=True))

    assert names("restaurant", "caffee uno") == ["caffe uno"]
    assert names("attraction", "christ college") == ["christ's college"]
    assert names("hotel", "cambridge belfry") == ["the cambridge belfry"]
    assert names("restaurant", "pizza hut") == ["pizza hut cherry hinton", "pizza hut city centre", "pizza hut fen ditton"]
    assert names("restaurant", "golden house") == ["golden house"]
    assert names("hotel", "nonexistent palace") == []


def test_similarity_primitives():
    assert fuzzy_form("The Rosa's B&B") == "rosas b and b"
    assert similar("hughes hal", "hughes hall") and not similar("ask", "asx restaurant")
    assert not similar("", "anything")


def test_unknown_values_do_not_filter(db):
    unknown_fee = [r for r in db.query("attraction", {}) if r["price"] == "?"]
    assert unknown_fee and all(r in db.query("attraction", {"price": "5 pounds"}) for r in unknown_fee)


def test_pointer_buckets(db):
    assert db.pointer("restaurant", {"name": "nowhere"}) == "[db_0]"
    assert db.pointer("restaurant", {"name": "pizza hut fen ditton"}) == "[db_1]"
    assert db.count("restaurant", {"food": "thai"}) == 2 and db.pointer("restaurant", {"food": "thai"}) == "[db_2]"
    assert db.pointer("restaurant", {"area": "centre"}) == "[db_3]"
    route = {"departure": "cambridge", "destination": "london kings cross", "day": "monday"}
    assert db.pointer("train", route | {"arrive": "07:51"}) == "[db_1]"  # 2 trains
    assert db.pointer("train", route | {"arrive": "11:51"}) == "[db_2]"  # 4 trains
    assert db.pointer("train", route | {"arrive": "13:51"}) == "[db_2]"  # 5 trains
    assert db.pointer("train", route) == "[db_3]"
    assert db.pointer("taxi", {"leave": "17:15"}) == db.pointer("general", {}) == "[db_nores]"
    assert set(POINTERS) == {"[db_nores]", "[db_0]", "[db_1]", "[db_2]", "[db_3]"}


def test_results_are_copies_and_domains_are_checked(db):
    db.query("hotel", {"name": "avalon"})[0]["name"] = "changed"
    assert db.query("hotel", {"name": "avalon"})[0]["name"] == "avalon"
    assert db.query("taxi", {}) == []
    with pytest.raises(ValueError, match="unknown MultiWOZ domain 'bus'"):
        db.query("bus", {})


def test_sample_database_gives_the_full_database_pointers(db):
    sample = MultiWozDB(SAMPLE_PATH / "db")
    for split in ("train", "val", "test"):
        for dialogue in load_multiwoz(SAMPLE_PATH, split):
            for domain, goal in dialogue.goal.items():
                assert sample.query(domain, goal.informable) == db.query(domain, goal.informable), dialogue.id
            for turn in dialogue.turns:
                for domain, state in turn.belief_state.items():
                    assert sample.pointer(domain, state) == db.pointer(domain, state), (dialogue.id, domain, state)


def test_bad_database_files(tmp_path):
    with pytest.raises(DataError, match="restaurant_db.json: database file not found"):
        MultiWozDB(tmp_path)
    for domain in ("restaurant", "hotel", "attraction", "train", "hospital", "police"):
        (tmp_path / f"{domain}_db.json").write_text("[]")
    (tmp_path / "train_db.json").write_text('[{"trainID": "TR1"')
    with pytest.raises(DataError, match="train_db.json: not valid JSON at line 1"):
        MultiWozDB(tmp_path)
    (tmp_path / "train_db.json").write_text('{"trainID": "TR1"}')
    with pytest.raises(DataError, match="expected a JSON list of row objects"):
        MultiWozDB(tmp_path)

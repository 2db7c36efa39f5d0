"""pipelines.group (and group_features, group_index): near-duplicate clusters, stories, persistence across runs.

All texts here were written for these tests (fictional places and people).
"""

from __future__ import annotations

import pickle
from datetime import datetime

import numpy as np
import pytest

from pipelines.db import open_db
from pipelines.group import (
    DEFAULTS,
    GROUP_MIGRATIONS,
    Features,
    Grouper,
    features,
)
from pipelines.group_features import line_signatures, shingle_hashes
from pipelines.group_index import GroupIds, Postings

NOW = datetime(2026, 11, 23, 12, 0, 0)

BRIDGE_TITLE = "Harlow council approves new river bridge after decade of delays"
BRIDGE = """\
The Harlow city council voted seven to two on Tuesday night to build a new road bridge across the Venn river, ending more than ten years of argument over how to replace the crumbling Mill Street crossing.
The approved design is a three-span concrete bridge with two traffic lanes, a protected cycle path and a wide footway on its eastern side. Construction is expected to start next spring and to take about two and a half years.
Engineers told councillors that the old iron crossing, opened in 1911, can no longer carry buses and that its weight limit would have to be lowered again within months if nothing was done.
The project will cost an estimated 48 million pounds, most of it from a regional transport grant awarded last year. The council will borrow the remaining nine million over thirty years.
Residents of the Quayside district, who had campaigned against an earlier plan that would have demolished a row of Victorian warehouses, said they were relieved that the new alignment leaves the buildings standing.
Councillor Mara Ellison, who chairs the transport committee, said the vote was a turning point for the town. "People have waited long enough. This bridge will carry our buses, our bikes and our children safely for the next hundred years," she said.
The two councillors who voted against the plan argued that the cost estimate was too optimistic and that the town should first repair the existing crossing.
A temporary footbridge will keep pedestrians moving across the river while the old structure is taken down in stages during the summer months.
"""

# the same event, told in other words by another outlet
BRIDGE_OTHER_TITLE = "Venn river crossing gets green light as Harlow backs 48m bridge plan"
BRIDGE_OTHER = """\
Harlow will finally get a replacement for its century-old Mill Street crossing after councillors backed a 48 million pound bridge over the Venn on Tuesday.
The decision, passed by seven votes to two, follows years of disputes about the route. Campaigners in Quayside had fought an earlier scheme that threatened historic warehouses near the water.
Transport committee chair Mara Ellison called it a historic night for Harlow and said buses, cyclists and walkers would all benefit from the new concrete bridge.
Work on the three-span structure should begin in the spring, with a regional transport grant paying for most of it.
"""

LIBRARY_TITLE = "Brenmoor library to open on Sundays from January"
LIBRARY = """\
The central library in Brenmoor will open on Sundays from the first week of January, the county arts department announced on Monday.
Opening hours on Sundays will run from eleven in the morning until four in the afternoon, and the children's reading room will host storytelling sessions every fortnight.
The change follows a public survey in which more than three thousand people asked for weekend access, many of them students preparing for exams.
Four new part-time posts will be created to staff the extra hours, paid for by savings from a new heating system installed in the building last winter.
"""

FERRY_TITLE = "Storm halts island ferry services for second day"
FERRY = """\
Ferry services between Port Calder and the Skerry islands were cancelled for a second day on Wednesday as gale force winds battered the northern coast.
The operator said sailings would resume once waves in the sound dropped below three metres, which forecasters expect on Thursday afternoon.
Islanders reported shortages of fresh milk and bread in the village shop, and the council arranged a helicopter delivery of medicines for the health centre.
Schools on the two largest islands stayed closed because teachers who live on the mainland could not travel.
"""

MARKET_TITLE = "Farmers market returns to Oldbridge square"
MARKET = """\
The weekly farmers market is returning to Oldbridge square after a two-year absence caused by resurfacing works on the cobbled streets around the town hall.
Twenty-two stalls have signed up for the first Saturday, selling vegetables, cheese, honey, bread and plants grown within thirty miles of the town.
Organisers hope to grow the market to forty stalls by the summer and will trial a late-night opening on the first Friday of each month.
"""

# a site's template: the same big sidebar under every article of one host
SIDEBAR = """\
Most read this week
Ten walks along the coast path that reward an early start on a cold morning
How a small bakery in the old town became the busiest cafe on the high street
Readers share their favourite recipes for winter soups, stews and slow roasts
The best places to watch the meteor shower away from the glare of the city lights
Why the price of heating oil keeps rising and what households can do about it
Sign up to our free morning newsletter for the day's essential news from across the county, delivered before breakfast
Follow us on social media for live updates, photo galleries and the stories everyone is talking about
Advertise with us and reach more than two hundred thousand readers in print and online every single week
Contact the newsroom with your tips, letters and photographs, and tell us the stories that matter to you
"""


def copy_of_bridge() -> tuple[str, str]:
    """A syndicated copy: new headline, dateline, a few words changed, a 'Read more' line, last paragraph dropped."""
    paragraphs = BRIDGE.strip().split("\n")
    edited = [p.replace("argument", "dispute").replace("residents", "locals").replace("about", "roughly") for p in paragraphs[:-1]]
    edited[0] = "HARLOW (Regional News Agency) - " + edited[0]
    edited.insert(4, "Read more: Brenmoor library to open on Sundays from January")
    return "UPDATE 1-Harlow approves Venn bridge", "\n".join(edited) + "\nReporting by Sam Okafor; Editing by Lena Marsh"


def _grouper(**kw) -> Grouper:
    return Grouper(now=NOW, **kw)


def _assign(g: Grouper, url: str, title: str, text: str, host: str, published: str | None = "2026-11-20"):
    return g.assign(url, title, published, host, g.features(title, text))


def _background(g: Grouper) -> None:
    """A few unrelated articles, so term frequencies mean something."""
    _assign(g, "https://brenmoor.example/library", LIBRARY_TITLE, LIBRARY, "brenmoor.example")
    _assign(g, "https://coast.example/ferry", FERRY_TITLE, FERRY, "coast.example")
    _assign(g, "https://oldbridge.example/market", MARKET_TITLE, MARKET, "oldbridge.example")


# --------------------------------------------------------------------------- features


def test_signatures_are_datasketch_minhashes():
    from datasketch import MinHash

    lines = [["a", "first", "line", "of", "several", "words"], ["short"], ["another", "line", "here", "too"]]
    h32, starts = shingle_hashes(lines, 4)
    assert list(starts) == [0, 3, 4]  # 3 shingles, then 1 (a short line is one shingle), then 1
    m = MinHash(num_perm=64, seed=3, hashfunc=int, scheme="affine32")
    m.update_batch(h32)
    sigs = line_signatures(lines, 4, 64, 3)
    assert sigs.shape == (3, 64)
    assert np.array_equal(sigs.min(axis=0), m.hashvalues)


def test_features_are_picklable_and_deterministic():
    f = features(BRIDGE_TITLE, BRIDGE)
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g, Features)
    assert np.array_equal(f.line_sigs, g.line_sigs)
    assert np.array_equal(f.terms, features(BRIDGE_TITLE, BRIDGE).terms)
    assert f.num_perm == DEFAULTS["NEWS_DEDUP_NUM_PERM"] and f.n_words > 250
    assert f.line_sigs.shape == (len(f.line_hashes), f.num_perm)


def test_features_rejects_bad_parameters():
    with pytest.raises(ValueError, match="NEWS_DEDUP_SHINGLE"):
        features("t", "some text", shingle=0)
    with pytest.raises(TypeError, match="strings"):
        features("t", b"bytes")


# --------------------------------------------------------------------------- near-duplicates


def test_lightly_edited_copy_joins_the_original_cluster():
    g = _grouper()
    _background(g)
    original = _assign(g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example")
    title, text = copy_of_bridge()
    copy = _assign(g, "https://wire.example/harlow-bridge", title, text, "wire.example")
    assert copy.cluster_id == original.cluster_id
    assert copy.story_id == original.story_id
    assert copy.duplicate_of == "https://harlow.example/bridge"
    assert 0.4 <= copy.similarity < 1.0
    assert not copy.new_cluster and original.new_cluster


def test_exact_copy_and_same_url_again():
    g = _grouper()
    a = _assign(g, "https://a.example/1", BRIDGE_TITLE, BRIDGE, "a.example")
    b = _assign(g, "https://b.example/2", "Another headline", BRIDGE, "b.example")
    assert b.cluster_id == a.cluster_id and b.similarity == 1.0
    again = _assign(g, "https://a.example/1", BRIDGE_TITLE, BRIDGE + "\nCorrection: a date was fixed.", "a.example")
    assert (again.cluster_id, again.story_id) == (a.cluster_id, a.story_id)
    assert len(g) == 2


def test_different_articles_sharing_a_site_template_are_not_grouped():
    g = _grouper()
    host = "county.example"
    first = _assign(g, "https://county.example/bridge", BRIDGE_TITLE, BRIDGE + SIDEBAR, host)
    second = _assign(g, "https://county.example/ferry", FERRY_TITLE, FERRY + SIDEBAR, host)
    third = _assign(g, "https://county.example/market", MARKET_TITLE, MARKET + SIDEBAR, host)
    assert len({first.cluster_id, second.cluster_id, third.cluster_id}) == 3
    assert len({first.story_id, second.story_id, third.story_id}) == 3

    # the test means something: without template detection the shared block alone groups two of them
    blind = _grouper(boilerplate_pages=10_000)
    a = _assign(blind, "https://county.example/ferry", FERRY_TITLE, FERRY + SIDEBAR, host)
    b = _assign(blind, "https://county.example/market", MARKET_TITLE, MARKET + SIDEBAR, host)
    assert a.cluster_id == b.cluster_id


def test_copy_on_another_site_template_still_found():
    g = _grouper()
    _assign(g, "https://county.example/ferry", FERRY_TITLE, FERRY + SIDEBAR, "county.example")
    _assign(g, "https://county.example/market", MARKET_TITLE, MARKET + SIDEBAR, "county.example")
    original = _assign(g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example")
    title, text = copy_of_bridge()
    copy = _assign(g, "https://county.example/bridge", title, text + "\n" + SIDEBAR, "county.example")
    assert copy.cluster_id == original.cluster_id


def test_same_site_copy_joins_its_original():
    """One site publishing a wire story twice: the lines it shares with one other page are not template."""
    g = _grouper()
    host = "county.example"
    for url, title, text in [("ferry", FERRY_TITLE, FERRY), ("market", MARKET_TITLE, MARKET), ("library", LIBRARY_TITLE, LIBRARY)]:
        _assign(g, f"https://county.example/{url}", title, text + SIDEBAR, host)
    original = _assign(g, "https://county.example/bridge", BRIDGE_TITLE, BRIDGE + SIDEBAR, host)
    paragraphs = BRIDGE.strip().split("\n")
    copy_text = "\n".join(["HARLOW (Wire) - " + paragraphs[0], *paragraphs[1:-1]]) + "\n" + SIDEBAR
    copy = _assign(g, "https://county.example/wire/bridge", "Harlow approves bridge", copy_text, host)
    assert copy.cluster_id == original.cluster_id and copy.duplicate_of == "https://county.example/bridge"
    assert copy.similarity >= 0.7
    other = _assign(g, "https://county.example/venn", BRIDGE_OTHER_TITLE, BRIDGE_OTHER + SIDEBAR, host)
    assert other.cluster_id not in (original.cluster_id,)


def test_second_page_of_a_site_with_a_big_short_line_template_is_not_a_copy():
    """Page 2 of a new site shares page 1's whole template (seen once so far): not a same-site copy."""
    cards = "\n".join(f"Tool {i}: an assistant that drafts emails, summaries and slides for busy teams" for i in range(80))
    first_text = ("The harbour board approved a new ferry timetable on Monday after months of complaints.\n"
                  "Services will start earlier in winter and the last boat will leave the island at ten.")
    second_text = ("The county library will open on Sundays from January, the council said on Friday.\n"
                   "Volunteers will staff the reading rooms and the children's corner in the afternoons.")
    g = _grouper()
    a = _assign(g, "https://tools.example/ferry", "Ferry timetable", first_text + "\n" + cards, "tools.example")
    b = _assign(g, "https://tools.example/library", "Library hours", second_text + "\n" + cards, "tools.example")
    assert a.cluster_id != b.cluster_id
    # the test means something: compared whole, the two pages look like copies
    fa, fb = g.features("Ferry timetable", first_text + "\n" + cards), g.features("Library hours", second_text + "\n" + cards)
    assert (fa.line_sigs.min(axis=0) == fb.line_sigs.min(axis=0)).mean() >= 0.7


def test_empty_texts_are_not_copies_of_each_other():
    g = _grouper()
    a = _assign(g, "https://a.example/x", "Live: the latest", "", "a.example")
    b = _assign(g, "https://b.example/y", "Gallery", "", "b.example")
    assert a.cluster_id != b.cluster_id


# --------------------------------------------------------------------------- stories


def test_same_event_in_different_words_shares_story_not_cluster():
    g = _grouper()
    _background(g)
    one = _assign(g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example")
    other = _assign(g, "https://valley.example/venn-bridge", BRIDGE_OTHER_TITLE, BRIDGE_OTHER, "valley.example")
    assert other.story_id == one.story_id
    assert other.cluster_id != one.cluster_id
    assert other.story_similarity >= g.story_threshold
    assert not other.new_story and other.new_cluster


def test_story_members_must_be_published_close_together():
    g = _grouper()
    _background(g)
    one = _assign(g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example", published="2026-11-01")
    late = _assign(g, "https://valley.example/venn-bridge", BRIDGE_OTHER_TITLE, BRIDGE_OTHER, "valley.example", published="2026-11-20")
    assert late.story_id != one.story_id


# --------------------------------------------------------------------------- persistence


def _store(db, g: Grouper, url: str, title: str, text: str, host: str, published: str):
    """What the crawler does: assign, then store the article row and persist(), in one transaction."""
    a = g.assign(url, title, published, host, g.features(title, text))
    with db.atomic():
        db["articles"].insert(
            {"url": url, "title": title, "text": text, "hostname": host, "published": published,
             "cluster_id": a.cluster_id, "story_id": a.story_id, "fetched_at": NOW.isoformat()}
        )
        g.persist(db, [(url, a)])
    return a


def test_restore_then_copy_joins_earlier_groups(tmp_path):
    path = tmp_path / "news.db"
    db = open_db(path)
    GROUP_MIGRATIONS.apply(db)

    # first run
    g1 = _grouper()
    for url, title, text, host in [
        ("https://brenmoor.example/library", LIBRARY_TITLE, LIBRARY, "brenmoor.example"),
        ("https://coast.example/ferry", FERRY_TITLE, FERRY, "coast.example"),
        ("https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example"),
    ]:
        _store(db, g1, url, title, text, host, "2026-11-20")
    original = db["articles"].get("https://harlow.example/bridge")
    db.close()

    # a later run: a fresh Grouper on the same file
    db = open_db(path)
    GROUP_MIGRATIONS.apply(db)
    g2 = _grouper()
    g2.restore(db)
    assert len(g2) == 3
    title, text = copy_of_bridge()
    copy = _store(db, g2, "https://wire.example/harlow-bridge", title, text, "wire.example", "2026-11-21")
    assert copy.cluster_id == original["cluster_id"]
    assert copy.story_id == original["story_id"]
    assert copy.duplicate_of == "https://harlow.example/bridge"
    other = _store(db, g2, "https://valley.example/venn", BRIDGE_OTHER_TITLE, BRIDGE_OTHER, "valley.example", "2026-11-21")
    assert other.story_id == original["story_id"] and other.cluster_id != original["cluster_id"]

    cluster = db["clusters"].get(original["cluster_id"])
    assert cluster["size"] == 2 and cluster["distinct_sites"] == 2
    assert cluster["representative_url"] == "https://harlow.example/bridge"
    assert (cluster["first_seen"], cluster["last_seen"]) == ("2026-11-20", "2026-11-21")
    story = db["stories"].get(original["story_id"])
    assert story["title"] == BRIDGE_TITLE
    assert story["article_count"] == 3 and story["distinct_sites"] == 3 and story["cluster_count"] == 2
    row = db["group_articles"].get("https://wire.example/harlow-bridge")
    assert (row["num_perm"], row["seed"], row["scheme"]) == (128, 1, "affine32")
    assert len(row["signature"]) == 4 * 128
    db.close()


def test_restore_keeps_only_the_window_and_matching_settings(tmp_path, caplog):
    db = open_db(tmp_path / "news.db")
    GROUP_MIGRATIONS.apply(db)
    g = _grouper()
    _store(db, g, "https://old.example/a", BRIDGE_TITLE, BRIDGE, "old.example", "2026-09-01")
    _store(db, g, "https://new.example/b", FERRY_TITLE, FERRY, "new.example", "2026-11-22")
    fresh = _grouper()
    fresh.restore(db)
    assert len(fresh) == 1  # the September article is outside the 30-day window

    other = _grouper(num_perm=64)
    other.restore(db)
    assert "other NEWS_DEDUP_* settings" in caplog.text
    copy = other.assign("https://x.example/c", FERRY_TITLE, "2026-11-22", "x.example", other.features(FERRY_TITLE, FERRY))
    assert copy.duplicate_of is None  # its signature is not comparable: regroup to fix
    db.close()


# --------------------------------------------------------------------------- settings and arguments


def test_from_settings_reads_scrapy_settings_and_dicts():
    from scrapy.settings import Settings

    g = Grouper.from_settings(Settings({"NEWS_DEDUP_THRESHOLD": "0.6", "NEWS_GROUP_WINDOW_DAYS": 7}))
    assert g.dedup_threshold == 0.6 and g.window_days == 7 and g.num_perm == 128
    g = Grouper.from_settings({"NEWS_STORY_THRESHOLD": 0.4, "NEWS_DEDUP_NUM_PERM": "64"})
    assert g.story_threshold == 0.4 and g.num_perm == 64
    assert g.feature_kwargs["num_perm"] == 64
    with pytest.raises(ValueError, match="NEWS_DEDUP_THRESHOLD"):
        Grouper.from_settings({"NEWS_DEDUP_THRESHOLD": "high"})
    with pytest.raises(ValueError, match="NEWS_DEDUP_THRESHOLD"):
        Grouper.from_settings({"NEWS_DEDUP_THRESHOLD": 1.5})
    with pytest.raises(ValueError, match="NEWS_GROUP_WINDOW_DAYS"):
        Grouper.from_settings({"NEWS_GROUP_WINDOW_DAYS": 0})


def test_assign_rejects_features_made_with_other_settings():
    g = _grouper(num_perm=64)
    with pytest.raises(ValueError, match="feature_kwargs"):
        g.assign("https://a.example/1", "t", None, "a.example", features("t", BRIDGE))


def test_restore_finds_exact_copies_and_keeps_stored_ids(tmp_path):
    db = open_db(tmp_path / "news.db")
    GROUP_MIGRATIONS.apply(db)
    g = _grouper()
    first = _store(db, g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example", "2026-11-20")
    _store(db, g, "https://coast.example/ferry", FERRY_TITLE, FERRY, "coast.example", "2026-11-20")
    # an id of another form (say, written by an older version) must survive a restore as it is
    db.execute("UPDATE group_articles SET cluster_id = 'legacy-ferry' WHERE url = 'https://coast.example/ferry'")
    fresh = _grouper()
    fresh.restore(db)
    exact = _assign(fresh, "https://mirror.example/bridge", BRIDGE_TITLE, BRIDGE, "mirror.example", "2026-11-21")
    assert (exact.duplicate_of, exact.similarity) == ("https://harlow.example/bridge", 1.0)
    assert (exact.cluster_id, exact.story_id) == (first.cluster_id, first.story_id)
    ferry = _assign(fresh, "https://mirror.example/ferry", FERRY_TITLE, FERRY, "mirror.example", "2026-11-21")
    assert ferry.cluster_id == "legacy-ferry"
    new = _assign(fresh, "https://brenmoor.example/library", LIBRARY_TITLE, LIBRARY, "brenmoor.example", "2026-11-21")
    assert new.new_cluster and new.cluster_id.startswith("c") and len(new.cluster_id) == 16
    db.close()


def test_group_ids_pack_and_restore_in_first_seen_order():
    ids = GroupIds("s")
    stored = ["s00000000000000f", "odd-one", "s0123456789abcde", "s00000000000000f", "odd-one", "Sxyz"]
    assert ids.load(stored).tolist() == [0, 1, 2, 0, 1, 3]
    assert [ids[i] for i in range(len(ids))] == ["s00000000000000f", "odd-one", "s0123456789abcde", "Sxyz"]
    assert ids.append("sfedcba987654321") == 4 and ids[4] == "sfedcba987654321"
    assert ids.append("weird") == 5 and ids[5] == "weird"
    with pytest.raises(RuntimeError):
        ids.load(["s0000000000000001"])


def test_postings_match_a_plain_dict():
    rng = np.random.default_rng(0)
    p = Postings(weighted=True)
    p._BUFFER = 64  # force many segments and merges
    p._bk, p._br, p._bw = np.empty(64, np.uint64), np.empty(64, np.int32), np.empty(64, np.float32)
    truth: dict[int, list[tuple[int, float]]] = {}
    for row in range(400):
        keys = np.unique(rng.integers(0, 60, size=int(rng.integers(1, 12)))).astype(np.uint64)
        weights = rng.random(len(keys)).astype(np.float32)
        p.add(keys, row, weights)
        for k, w in zip(keys.tolist(), weights.tolist()):
            truth.setdefault(k, []).append((row, w))
    query = np.array([3, 17, 59, 1000], dtype=np.uint64)
    rows, weights, which = p.lookup(query)
    got = sorted((int(query[i]), int(r), round(float(w), 5)) for r, w, i in zip(rows, weights, which))
    want = sorted((k, r, round(w, 5)) for k in query.tolist() for r, w in truth.get(k, []))
    assert got == want
    rows, _, which = p.lookup(query, cap=5)
    for i, k in enumerate(query.tolist()):
        newest = sorted(r for r, _ in truth.get(k, []))[-5:]
        assert set(newest) <= set(rows[which == i].tolist())


def test_every_setting_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "grouping.md").read_text(encoding="utf-8")
    for name, default in DEFAULTS.items():
        assert f"`{name}` | {default}" in doc.replace("0.30", "0.3"), f"{name} (default {default}) is not in the settings table of docs/grouping.md"


# a new site's template, large enough to hide a copy while it is still part of its text:
# 60 promo lines of made-up words (distinct shingles, as real promos have)
_PROMO_WORDS = (
    "garden kitchen travel winter bicycle office kelby marrow tillford ashgate penrith lantern copper velvet "
    "harbour orchard meadow quarry summit willow falcon juniper saffron cobalt ember thistle bramble pebble "
    "sorrel tundra canyon lagoon prairie glacier delta mesa fjord atoll steppe savanna bayou heath moor fen"
).split()
PROMOS = "\n".join(
    " ".join(_PROMO_WORDS[(i * 7 + j * j * 3 + j) % len(_PROMO_WORDS)] for j in range(16)) for i in range(60)
)


def test_copy_grouped_with_its_sites_template_rejoins_its_original_once_cleaned(tmp_path):
    """The first pages of a new site are grouped before its template is known; when the
    crawl cleans them again, Grouper.rejoin moves such a copy into its original's group."""
    db = open_db(tmp_path / "news.db")
    GROUP_MIGRATIONS.apply(db)
    g = _grouper(story_threshold=0.95)  # (so the polluted copy starts a story of its own too)
    for url, title, text, host in [
        ("https://brenmoor.example/library", LIBRARY_TITLE, LIBRARY, "brenmoor.example"),
        ("https://coast.example/ferry", FERRY_TITLE, FERRY, "coast.example"),
    ]:
        _store(db, g, url, title, text, host, "2026-11-20")
    original = _store(db, g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example", "2026-11-20")
    title, text = copy_of_bridge()
    first = _store(db, g, "https://wire.example/bridge", title, text + "\n" + PROMOS, "wire.example", "2026-11-21")
    assert first.cluster_id != original.cluster_id and first.story_id != original.story_id  # the template hid the copy
    lonely = db["clusters"].get(first.cluster_id)
    assert lonely["size"] == 1

    # the crawl cleaned the page again: its own text only
    rejoined = g.rejoin("https://wire.example/bridge", "wire.example", g.features(title, text))
    assert rejoined.duplicate_of == "https://harlow.example/bridge"
    assert (rejoined.cluster_id, rejoined.story_id) == (original.cluster_id, original.story_id)
    with db.atomic():
        g.persist_rejoined(db, [("https://wire.example/bridge", rejoined)])
    row = db["articles"].get("https://wire.example/bridge")
    assert (row["cluster_id"], row["story_id"]) == (original.cluster_id, original.story_id)
    assert db["group_articles"].get("https://wire.example/bridge")["cluster_id"] == original.cluster_id
    assert db["clusters"].get(original.cluster_id)["size"] == 2
    assert not db["clusters"].count_where("id = ?", [first.cluster_id])  # the group it left was empty
    assert not db["stories"].count_where("id = ?", [first.story_id])  # and the story
    assert db["stories"].get(original.story_id)["article_count"] == 2

    # a later copy of the cleaned text finds the group through either member
    again = _store(db, g, "https://relay.example/bridge", title, text, "relay.example", "2026-11-22")
    assert again.cluster_id == original.cluster_id
    # an article whose cleaned text copies nothing keeps its groups
    market = _store(db, g, "https://oldbridge.example/market", MARKET_TITLE, MARKET + "\n" + PROMOS, "oldbridge.example", "2026-11-22")
    stays = g.rejoin("https://oldbridge.example/market", "oldbridge.example", g.features(MARKET_TITLE, MARKET))
    assert stays.duplicate_of is None and (stays.cluster_id, stays.story_id) == (market.cluster_id, market.story_id)
    assert g.rejoin("https://never.example/seen", "never.example", g.features(MARKET_TITLE, MARKET)) is None
    db.close()


def test_a_story_left_by_a_rejoined_copy_keeps_its_other_members(tmp_path):
    """The copy's first story keeps the other outlet's article; that story's title and link
    are now that article's."""
    db = open_db(tmp_path / "news.db")
    GROUP_MIGRATIONS.apply(db)
    g = _grouper()
    _store(db, g, "https://brenmoor.example/library", LIBRARY_TITLE, LIBRARY, "brenmoor.example", "2026-11-20")
    _store(db, g, "https://coast.example/ferry", FERRY_TITLE, FERRY, "coast.example", "2026-11-20")
    original = _store(db, g, "https://harlow.example/bridge", BRIDGE_TITLE, BRIDGE, "harlow.example", "2026-11-10")
    title, text = copy_of_bridge()
    # eleven days later (too far for the original's story), the copy on a new site, template included
    first = _store(db, g, "https://wire.example/bridge", title, text + "\n" + PROMOS, "wire.example", "2026-11-21")
    other = _store(db, g, "https://valley.example/venn", BRIDGE_OTHER_TITLE, BRIDGE_OTHER, "valley.example", "2026-11-21")
    assert first.cluster_id != original.cluster_id and first.story_id != original.story_id
    assert other.story_id == first.story_id and db["stories"].get(first.story_id)["title"] == title

    rejoined = g.rejoin("https://wire.example/bridge", "wire.example", g.features(title, text))
    assert (rejoined.cluster_id, rejoined.story_id) == (original.cluster_id, original.story_id)
    with db.atomic():
        g.persist_rejoined(db, [("https://wire.example/bridge", rejoined)])
    left = db["stories"].get(first.story_id)
    assert (left["title"], left["representative_url"], left["article_count"]) == (BRIDGE_OTHER_TITLE, "https://valley.example/venn", 1)
    joined = db["stories"].get(original.story_id)
    assert (joined["title"], joined["article_count"], joined["distinct_sites"]) == (BRIDGE_TITLE, 2, 2)
    assert not db["clusters"].count_where("id = ?", [first.cluster_id])
    db.close()

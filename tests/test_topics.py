import pytest

from crawler.topics import TopicsError, load_topics, select_topics

GOOD = """
[[topic]]
name = "ai-model-theft"
query = 'Anthropic AND (Alibaba OR Qwen)'
feeds = ["https://example.com/rss.xml"]
sitemaps = ["https://example.com/"]
max_age_days = 3

[[topic]]
name = "local"
pages = ["https://example.com/local/"]
"""


def write(tmp_path, text):
    path = tmp_path / "topics.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_good_file(tmp_path):
    topics = load_topics(write(tmp_path, GOOD))
    assert [t.name for t in topics] == ["ai-model-theft", "local"]
    assert topics[0].max_age_days == 3 and topics[1].max_age_days == 7
    assert topics[1].query is None and topics[1].match("anything") == frozenset()
    assert topics[0].match("Anthropic and Qwen") == {"anthropic", "qwen"}
    assert select_topics(topics, "local")[0].name == "local"
    with pytest.raises(TopicsError, match="unknown topic"):
        select_topics(topics, "nope")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ('[[topic]]\nname = "x"\nquery = "(a"\nfeeds = ["https://e.com/f"]', ["topic #1", "'x'", "field 'query'", "unclosed"]),
        ('[[topic]]\nname = "Bad Name"\nfeeds = ["https://e.com/f"]', ["topic #1", "field 'name'", "slug"]),
        ('[[topic]]\nname = "x"', ["topic #1", "no sources"]),
        ('[[topic]]\nname = "x"\nfeeds = ["ftp://e.com/f"]', ["field 'feeds'", "http(s)"]),
        ('[[topic]]\nname = "x"\nfeeds = ["https://e.com/f"]\nmax_age_days = -1', ["field 'max_age_days'"]),
        ('[[topic]]\nname = "x"\nfeed = ["https://e.com/f"]', ["unknown field", "feed"]),
        ('[[topic]]\nname = "x"\nfeeds = ["https://e.com/f"]\n[[topic]]\nname = "x"\nfeeds = ["https://e.com/g"]', ["topic #2", "already used by topic #1"]),
        ("[topic]\nname = 1", ["[[topic]]"]),
        ("name = = 1", ["not valid TOML"]),
        ("", ["no topics"]),
    ],
)
def test_errors_name_topic_field_and_fix(tmp_path, text, fragments):
    with pytest.raises(TopicsError) as info:
        load_topics(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(TopicsError, match="NEWS_TOPICS"):
        load_topics(tmp_path / "nope.toml")

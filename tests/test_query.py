import pytest

from crawler.query import QueryError, parse_query

QUERY = 'Anthropic AND (Alibaba OR Qwen OR distillation) AND NOT "stock tips"'


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Anthropic accuses Alibaba of copying Claude", {"anthropic", "alibaba"}),
        ("ANTHROPIC and qwen", {"anthropic", "qwen"}),
        ("Anthropic on model distillation and Qwen", {"anthropic", "distillation", "qwen"}),
        ("Anthropic alone", None),
        ("Alibaba alone", None),
        ("Anthropic Alibaba and some stock tips", None),
        ("Anthropic Alibaba: stock. Tips!", None),  # punctuation does not break a phrase
        ("Anthropicx Alibabas", None),  # whole words only
    ],
)
def test_match(text, expected):
    found = parse_query(QUERY).match(text)
    if expected is None:
        assert found is None
    else:
        assert found == frozenset(expected)


def test_phrase_needs_adjacent_words():
    q = parse_query('"city council" budget')
    assert q.match("The City Council passed the budget") == {"city council", "budget"}
    assert q.match("The council of the city passed the budget") is None


def test_implicit_and_and_or_precedence():
    q = parse_query("a b OR c")  # (a AND b) OR c
    assert q.match("c") == {"c"}
    assert q.match("a b") == {"a", "b"}
    assert q.match("a") is None


def test_punctuated_term_is_a_phrase():
    q = parse_query("GPT-4")
    assert q.match("OpenAI's gpt 4 model") == {"gpt 4"}
    assert q.match("gpt-5 and 4") is None


def test_terms_in_order_excluding_negated():
    assert parse_query(QUERY).terms() == ["anthropic", "alibaba", "qwen", "distillation"]


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("(a OR b", "unclosed '('"),
        ("a OR b)", "unmatched ')'"),
        ("a AND", "ends too early"),
        ('"open phrase', "unclosed quote"),
        ("NOT spam", "only excludes"),
        ("OR b", "operator OR"),
        ("   ", "empty"),
        ('""', "empty phrase"),
    ],
)
def test_errors_say_what_and_where(bad, fragment):
    with pytest.raises(QueryError) as info:
        parse_query(bad)
    assert fragment in str(info.value)


def test_fingerprint_ignores_spacing_and_case_only():
    same = [parse_query(q).fingerprint() for q in ('Anthropic AND (Alibaba OR Qwen)', 'anthropic  AND (alibaba OR QWEN)', 'Anthropic AND ((Alibaba OR Qwen))')]
    assert len(set(same)) == 1 and len(same[0]) == 16
    others = {parse_query(q).fingerprint() for q in ('Anthropic AND (Alibaba OR Qwen)', 'Anthropic OR (Alibaba OR Qwen)', 'Anthropic AND NOT (Alibaba OR Qwen)', '"Anthropic Alibaba" OR Qwen')}
    assert len(others) == 4

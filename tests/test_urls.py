import pytest

from crawler.urls import canonical_url, page_canonical


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTPS://Example.COM:443/a?utm_source=x&utm_medium=y", "https://example.com/a"),
        ("http://example.com:80/a#section", "http://example.com/a"),
        ("http://127.0.0.1:8080/a?b=2&a=1&fbclid=z", "http://127.0.0.1:8080/a?a=1&b=2"),
        ("https://example.com/a.html?ref=atom", "https://example.com/a.html"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/story?id=42&gclid=1", "https://example.com/story?id=42"),
    ],
)
def test_canonical_url(url, expected):
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected  # idempotent


def test_page_canonical_prefers_rel_canonical_and_stays_on_site():
    head = b'<html><head><meta property="og:url" content="/og?utm_source=1"><link rel="canonical" href="https://ex.com/real"></head><body>x'
    assert page_canonical(head, "https://ex.com/page?utm_source=feed") == "https://ex.com/real"
    og_only = b"<head><meta content='https://ex.com/og' property='og:url'></head>"
    assert page_canonical(og_only, "https://ex.com/x") == "https://ex.com/og"
    other_site = b'<head><link rel="canonical" href="https://other.org/original"></head>'
    assert page_canonical(other_site, "https://ex.com/x") is None
    body_link = b'<head></head><body><link rel="canonical" href="https://ex.com/late">'
    assert page_canonical(body_link, "https://ex.com/x") is None

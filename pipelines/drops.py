"""Why an item was dropped: DropItem subclasses that the store records in url_outcomes."""

from __future__ import annotations

from scrapy.exceptions import DropItem


class NotAnArticleDrop(DropItem):
    """The page is not an article (no or too little text, a listing page...)."""

    outcome = "not_article"


class IrrelevantDrop(DropItem):
    """The article matches none of its topics' queries."""

    outcome = "irrelevant"

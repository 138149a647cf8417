"""Cleaning of review text: markup removed, negations kept, duplicates never straddle splits.

The tests that start processes are in tests/e2e/test_text_cleaning.py."""

from __future__ import annotations

import pandas as pd

from bench.data.text_cleaning import baseline_tokens, clean_for_baseline, clean_for_model, dedupe_key
from workloads.sentiment import clean_and_dedupe, load_reviews, split_stratified


def test_html_entities_are_unescaped_even_when_escaped_twice():
    assert clean_for_model("Fish &amp; chips") == "Fish & chips"
    assert clean_for_model("Great &amp;quot;CD&amp;quot; &#39;n&#39; more") == "Great \"CD\" 'n' more"


def test_tags_are_stripped_including_escaped_ones():
    assert clean_for_model("Good.<br /><br />Really <b>good</b>.") == "Good. Really good ."
    assert clean_for_model("&lt;p&gt;Works&lt;/p&gt; fine") == "Works fine"
    assert clean_for_model("5 < 6 and 7 > 3") == "5 < 6 and 7 > 3"  # comparisons are not tags


def test_urls_are_stripped():
    text = "See http://www.amazon.com/dp/B000?ref=x and www.example.org/page, then HTTPS://A.B/c."
    assert clean_for_model(text) == "See and then"


def test_unicode_and_whitespace_are_normalised():
    assert clean_for_model("\uff26\uff55\uff4c\uff4c\u00a0width \t\n  text ") == "Full width text"


def test_model_cleaning_keeps_words_case_and_negations():
    text = "I did NOT like it: it isn't good, never again!"
    assert clean_for_model(text) == text


def test_baseline_keeps_negations_drops_stop_words_and_stems():
    tokens = baseline_tokens("The batteries didn't last and it's not working, never buying again")
    assert tokens.count("not") == 2  # "didn't" split into did + not, and "not" itself
    assert "never" in tokens
    assert "the" not in tokens and "and" not in tokens
    assert "batteri" in tokens and "work" in tokens  # Porter stems
    assert baseline_tokens("I can't and won't") == ["can", "not", "will", "not"]
    assert clean_for_baseline("Not <b>good</b> http://x.y") == "not good"


def test_dedupe_drops_empty_duplicate_and_contradictory_reviews():
    frame = pd.DataFrame(
        {
            "label": [1, 1, 0, 1, 0, 1, 0],
            "text": ["Great  product", "great product", "<br/>", "Fine &amp; dandy", "Fine & dandy", "Bad", "Okay"],
        }
    )
    kept, counts = clean_and_dedupe(frame)
    assert list(kept["text"]) == ["Great product", "Bad", "Okay"]
    assert counts == {"rows": 7, "dropped_empty": 1, "dropped_duplicates": 1, "dropped_conflicting_labels": 2, "kept": 3}


def test_duplicates_never_straddle_splits_on_the_real_data():
    # Plant duplicates differing only by case, whitespace and markup, then split the real data.
    reviews = load_reviews()
    planted = reviews.head(50).assign(text=lambda f: "  " + f["text"].str.upper() + " <br/>")
    kept, counts = clean_and_dedupe(pd.concat([reviews, planted], ignore_index=True))
    assert counts["dropped_duplicates"] >= 50
    parts = split_stratified(kept, seed=0)
    keys = {name: set(part["text"].map(dedupe_key)) for name, part in parts.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert sum(len(part) for part in parts.values()) == len(kept)
    for part in parts.values():  # stratified: every split keeps the class balance
        assert abs(part["label"].mean() - kept["label"].mean()) < 0.01


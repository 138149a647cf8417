"""Cleaning review text, offline: light cleaning for the transformer, heavier for TF-IDF.

Everything here uses only what the installed packages ship: NLTK's RegexpTokenizer and Porter
stemmer (no `nltk.download`, no corpus) and scikit-learn's built-in English stop-word list.

- `clean_for_model` keeps the words, their case and punctuation, because the BERT tokenizer does
  its own lower-casing and word pieces; it only removes markup noise (HTML entities and tags,
  URLs) and normalises unicode and whitespace.
- `clean_for_baseline` goes further for the bag-of-words model: lower-case, tokenise, split
  contractions so that "didn't" gives "not", drop stop words EXCEPT negations, Porter-stem.
  Negations are kept because "not good" is the bigram that tells TF-IDF the sentiment.
- `dedupe_key` is what "duplicate" means: same cleaned text up to case and whitespace.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

from nltk.stem import PorterStemmer
from nltk.tokenize import RegexpTokenizer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# A tag opens with a letter, "/" or "!" right after "<", so "5 < 6 and 7 > 3" is left alone.
TAG = re.compile(r"<!--.*?-->|<[/!]?[A-Za-z][^<>]{0,200}>", re.DOTALL)
URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
WHITESPACE = re.compile(r"\s+")

NEGATIONS = frozenset(
    {"no", "not", "nor", "never", "none", "nothing", "nobody", "neither", "nowhere", "cannot", "without"}
)
"""Kept by the baseline although scikit-learn's list calls them stop words."""
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) - NEGATIONS

# Contractions whose stem is not the token minus "n't".
IRREGULAR_NOT = {"can't": "can", "won't": "will", "shan't": "shall", "ain't": "am"}

# Words and numbers, with a contraction kept on its word ("didn't", "it's"). A regexp tokenizer,
# not NLTK's TweetTokenizer: far faster (docs/data.md, "Text cleaning"), and the baseline drops
# punctuation and emoticons anyway.
_tokenizer = RegexpTokenizer(r"[a-z0-9]+(?:['\u2019][a-z]+)?")
_stemmer = PorterStemmer()


def clean_for_model(text: str) -> str:
    """Unescape HTML entities, strip tags and URLs, normalise unicode (NFKC) and whitespace.

    Entities are unescaped before tags are stripped so that an escaped tag (`&lt;br /&gt;`)
    goes too, and up to twice because scraped text is sometimes escaped twice (`&amp;quot;`).
    """
    for _ in range(2):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = TAG.sub(" ", text)
    text = URL.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    return WHITESPACE.sub(" ", text).strip()


def dedupe_key(cleaned: str) -> str:
    """Two reviews are duplicates when their cleaned texts match up to case and whitespace."""
    return WHITESPACE.sub(" ", cleaned.casefold()).strip()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stem(word)


def baseline_tokens(cleaned: str) -> list[str]:
    """Lower-cased, stemmed word tokens without stop words; negations kept as "not"."""
    out: list[str] = []
    for token in _tokenizer.tokenize(cleaned.lower()):
        token = token.replace("\u2019", "'")
        if token.endswith("n't"):
            out.append(_stem(IRREGULAR_NOT.get(token, token[:-3])))
            out.append("not")
            continue
        if token in STOP_WORDS:
            continue
        out.append(_stem(token))
    return out


def clean_for_baseline(text: str) -> str:
    """`clean_for_model`, then the baseline's tokens joined by spaces (input of TF-IDF)."""
    return " ".join(baseline_tokens(clean_for_model(text)))

"""Class names as they read in prompts, and as they are safe in file names and cache keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Word boundaries inside CamelCase: "CleanAndJerk" -> "Clean And Jerk", "HTMLParser" -> "HTML Parser".
_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_ACRONYM_END = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def humanize(name: str) -> str:
    """How a class name reads in a sentence: "CleanAndJerk" -> "clean and jerk", "Baton twirling" -> "baton twirling".

    Acronyms stay upper case ("TV"), underscores become spaces, a slash reads as "or".
    """
    text = unicodedata.normalize("NFC", name).replace("_", " ")
    text = re.sub(r"\s*/\s*", " or ", text)
    text = _CAMEL_ACRONYM_END.sub(" ", _CAMEL_LOWER_UPPER.sub(" ", text))
    words = []
    for word in text.split():
        is_acronym = len(word) > 1 and word.isupper() and word.isalpha()
        words.append(word if is_acronym else word.lower())
    return " ".join(words)


def file_slug(name: str, max_slug: int = 40) -> str:
    """A file-name-safe, case-insensitive-filesystem-safe key that is unique per exact class name.

    The readable slug alone could collide ("Long jump" vs "long/jump"), so a short hash of the exact name
    is appended.
    """
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_JUNK.sub("-", humanize(ascii_text).lower()).strip("-")[:max_slug].strip("-") or "class"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}"

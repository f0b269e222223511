"""Near-miss suggestions for names the user typed (config keys, registered
types, tool paths), so that an error says what was probably meant."""
import difflib
from typing import Iterable, List

# close enough to be a typo (difflib ratio); 'cache_ration' vs
# 'cache_ratio' is 0.96, 'GRCAtention' vs 'GRCAttention' 0.96
CUTOFF = 0.75


def close_matches(word: str,
                  candidates: Iterable[str],
                  n: int = 3,
                  cutoff: float = CUTOFF) -> List[str]:
    """Up to ``n`` candidates close to ``word``, best first; case is
    ignored when comparing."""
    candidates = [str(c) for c in candidates]
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(
        str(word).lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[c] for c in found if lowered[c] != word]


def did_you_mean(word: str, candidates: Iterable[str], **kwargs) -> str:
    """``'; did you mean X?'`` (or ``X or Y``), or ``''`` when nothing is
    close."""
    close = close_matches(word, candidates, **kwargs)
    return f'; did you mean {" or ".join(close)}?' if close else ''

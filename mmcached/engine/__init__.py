"""Training machinery: hooks (cache curves, exact resume) and loops."""
from .hooks import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403

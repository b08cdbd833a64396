"""The one error type for malformed corpus files.

Readers raise it instead of letting a KeyError or JSONDecodeError escape, so a
bad file is reported by where it is (file, dialogue, turn) and not by where the
parser happened to trip.
"""

from __future__ import annotations

from os import PathLike


class DataError(ValueError):
    """A corpus file is missing, truncated or inconsistent.

    ``str(error)`` reads ``"path: dialogue X, turn N: message"``; the dialogue
    and turn parts are left out when unknown.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        message: str,
        dialogue_id: str | None = None,
        turn: int | None = None,
    ) -> None:
        self.path = str(path)
        self.message = message
        self.dialogue_id = dialogue_id
        self.turn = turn
        where = [f"dialogue {dialogue_id}"] if dialogue_id is not None else []
        where += [f"turn {turn}"] if turn is not None else []
        super().__init__(": ".join([self.path, *([", ".join(where)] if where else []), message]))

    def __reduce__(self):  # keep pickling (multiprocessing data loaders) working with the extra fields
        return (type(self), (self.path, self.message, self.dialogue_id, self.turn))

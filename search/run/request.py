"""What a worker is asked to run: a study file's configuration, or a stored study's name. Kept
apart from joining.py, which loads the data (torch), so that a command can check a request and
refuse a bad one before torch is imported."""

from __future__ import annotations

from typing import NamedTuple

from search.studyfile import StudyConfig


class StoredStudy(NamedTuple):
    """A study named instead of a study file (`--study NAME`): joined as it was created, with this
    machine's data path (`data`, else the creator's)."""

    name: str
    data: str | None = None


Request = StudyConfig | StoredStudy


def requested_name(request: Request) -> str:
    return request.study.name if isinstance(request, StudyConfig) else request.name

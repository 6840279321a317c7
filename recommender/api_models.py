"""The API's request and response models (pydantic): the handler validates with them and the
OpenAPI document at ``/openapi.json`` is generated from them, so the two cannot drift.

Unknown fields are **rejected** (422 naming the field): a misspelt ``exclude_seen`` must not be
silently ignored. Types are strict: ``"5"`` is not a number and ``"yes"`` is not a boolean. An
integer may be written ``5.0``: JSON does not tell it from ``5`` and the document's ``integer`` (JSON
Schema) accepts both; ``5.5`` is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from recommender.settings import MAX_HISTORY_ITEMS, MAX_K


class _ApiModel(BaseModel):
    """The API's models build their validators on first use (``defer_build``), not at import: a cold start pays only
    for the models its first request touches (the rest are built by the OpenAPI document or their first answer)."""

    model_config = ConfigDict(defer_build=True)


_STRICT = ConfigDict(extra="forbid", strict=True, defer_build=True)

GenreName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _integral_float_as_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_integral_float_as_int)]
"""An integer, also when written with a zero fraction (``5.0``), as JSON Schema's ``integer`` allows."""
OptionalJsonInt = Annotated[int | None, BeforeValidator(_integral_float_as_int)]


class HistoryEntry(_ApiModel):
    """One thing the person watched or rated."""

    model_config = _STRICT

    movie_id: JsonInt = Field(ge=1, le=2**31 - 1, description="MovieLens movie id.")
    rating: float | None = Field(default=None, ge=0.5, le=5.0, description="Stars, 0.5 to 5.0; omit if unrated.")
    timestamp: OptionalJsonInt = Field(
        default=None, ge=0, description="Unix seconds; when every entry has one, the history is ordered by it."
    )


class RecommendationFilters(_ApiModel):
    """Filters applied inside the k-NN query (a movie without a year fails any year bound)."""

    model_config = _STRICT

    genres_any: list[GenreName] = Field(
        default_factory=list, max_length=32, description="Keep movies with at least one of these genres."
    )
    genres_none: list[GenreName] = Field(
        default_factory=list, max_length=32, description="Drop movies with any of these genres."
    )
    year_min: OptionalJsonInt = Field(default=None, ge=1800, le=2200, description="Inclusive.")
    year_max: OptionalJsonInt = Field(default=None, ge=1800, le=2200, description="Inclusive.")

    @field_validator("year_max")
    @classmethod
    def _years_in_order(cls, year_max: int | None, info: ValidationInfo) -> int | None:
        year_min = info.data.get("year_min")
        if year_max is not None and year_min is not None and year_min > year_max:
            raise ValueError(f"year_max ({year_max}) is less than year_min ({year_min})")
        return year_max


class RecommendationRequest(_ApiModel):
    """What to recommend for: recent activity, most recent last."""

    model_config = _STRICT

    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_ITEMS,
        description=(
            f"At most {MAX_HISTORY_ITEMS} entries, most recent last; the model reads the last "
            "`history_length` (see /health). Empty: popular movies."
        ),
    )
    k: JsonInt = Field(default=10, ge=1, le=MAX_K, description="How many movies to return.")
    exclude_seen: bool = Field(default=True, description="Leave out the movies in the history.")
    filters: RecommendationFilters = Field(default_factory=RecommendationFilters)
    explain: bool = Field(
        default=False,
        description=(
            "Add `because` to each item: the liked history movies (rated 3 stars or more, or unrated) most "
            "similar to it by item vector. Costs one more index call (OpenSearch: one multi-get)."
        ),
    )


class MovieOut(_ApiModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class RankedMovie(MovieOut):
    score: float = Field(
        description="Inner product of the user and movie vectors (higher is better); popularity for popular lists."
    )


class LikedMovie(_ApiModel):
    movie_id: int = Field(description="A movie of the request's history.")
    similarity: float = Field(
        description="Cosine similarity of the two movies' item vectors, popularity left out (0 to 1; higher is closer)."
    )


class RecommendedMovie(RankedMovie):
    because: list[LikedMovie] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description=(
            "Only with `explain`: up to 3 liked history movies most similar to this one, most similar first; "
            "empty when none is similar (cosine > 0) or the index cannot answer."
        ),
    )


class RecommendationResponse(_ApiModel):
    model_version: str
    items: list[RecommendedMovie]
    cached: bool = Field(description="Served from the cache.")
    strategy: Literal["personalized", "popular"]
    fallback: Literal["popular"] | None = Field(
        default=None, description="Set when the vector index could not answer and popular movies were served."
    )
    ignored_movie_ids: list[int] = Field(description="History movie ids unknown to the model and the catalog.")
    history_used: int = Field(description="History entries the model read.")


class SimilarResponse(_ApiModel):
    model_version: str
    movie: MovieOut
    items: list[RankedMovie]
    cached: bool


class MovieResponse(MovieOut):
    popularity: float


class MovieSearchResponse(_ApiModel):
    model_version: str
    query: str = Field(description="`q` as received.")
    items: list[MovieResponse] = Field(
        description="Movies whose title holds every term of `q`, the last one as a prefix; most popular first."
    )
    cached: bool = Field(description="Served from the cache.")
    fallback: Literal["bundle"] | None = Field(
        default=None, description="Set when the vector index could not answer and the bundle's catalog was searched."
    )


class BackendHealth(_ApiModel):
    kind: str
    ok: bool
    detail: str
    info: dict[str, Any]


class HealthResponse(_ApiModel):
    status: Literal["ok", "degraded", "unavailable"]
    model_version: str | None
    history_length: int | None
    index: BackendHealth | None
    cache: BackendHealth | None
    fallback: Literal["popular", "none"] | None


class ErrorDetail(_ApiModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `history[3].movie_id`.")
    location: Literal["body", "query", "path", "header"]
    reason: str


class ErrorResponse(_ApiModel):
    error: str = Field(description="A stable code: validation_error, invalid_json, body_too_large, not_found, ...")
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = None
    bundle_model_version: str | None = Field(
        default=None, description="Only with `model_mismatch` (503): the model of this service's user tower."
    )
    index_model_version: str | None = Field(
        default=None, description="Only with `model_mismatch` (503): the model whose vectors the index serves."
    )
